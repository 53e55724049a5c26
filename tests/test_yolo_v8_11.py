"""edgecnn's YOLOv8 / YOLO11 models: the export form computes the same function; pruning refuses
clearly."""

import numpy as np
import pytest
import torch

from edgecnn.models import build_model


def randomized(name: str):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3).eval()
    for key, tensor in model.state_dict().items():
        if "running_var" in key:
            tensor.copy_(torch.rand_like(tensor) + 0.5)
        elif "running_mean" in key:
            tensor.copy_(torch.randn_like(tensor) * 0.2)
    return model


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_export_form_computes_the_same_outputs(name, one_torch_thread):
    model = randomized(name)
    export = model.for_export()
    assert sum(getattr(m, "residual_concat", False) for m in export.modules()) == {"yolov8n": 4, "yolo11n": 5}[name]
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        (boxes, scores), (export_boxes, export_scores) = model(x), export(x)
    assert boxes.shape == (2, 12 * 16 + 6 * 8 + 3 * 4, 4) and scores.shape[-1] == 3
    assert torch.allclose(boxes, export_boxes, atol=1e-4) and torch.allclose(scores, export_scores, atol=1e-5)
    assert not any(getattr(m, "residual_concat", False) for m in model.modules())  # the model itself is untouched


def test_training_mode_gives_the_dfl_bins():
    model = build_model("yolo11n", num_classes=3).train()
    boxes, logits, bins = model(torch.rand(1, 3, 64, 64))
    assert bins.shape == (1, boxes.shape[1], 4, 16)
    assert torch.allclose(boxes, (bins.softmax(-1) * torch.arange(16.0)).sum(-1), atol=1e-5)


def test_pruning_says_why_it_cannot():
    from edgecnn.compress.prune import ChannelPruner

    with pytest.raises(ValueError, match="cannot prune YoloV8Net: torch-pruning cannot follow the split"):
        ChannelPruner(build_model("yolov8n", num_classes=3), torch.rand(1, 3, 64, 64))


def test_qat_trains_exports_qdq_and_reloads(tmp_path):
    name = "yolo11n"  # C3k2 (a C2f) and the attention blocks
    import onnxruntime as ort

    from edgecnn.compress import qat
    from edgecnn.train.losses import DetectionLoss
    from test_qat import IMGSZ, META, calibration_dir

    model = randomized(name)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    qat.fold_batchnorm(model, x[:1])
    qmodel = qat.quantize(model, qat.calibration_tensors(calibration_dir(tmp_path), IMGSZ, META["mean"], META["std"]),
                          subset_size=4)
    targets = torch.tensor([[0, 0, 4, 6, 30, 40], [1, 2, 34, 20, 60, 58]], dtype=torch.float32)
    loss = DetectionLoss(3, qmodel.strides)(qmodel.train()(x), targets, (IMGSZ, IMGSZ))[0]
    loss.backward()
    assert torch.isfinite(loss)
    qmodel.eval()
    with torch.no_grad():
        boxes, scores = qmodel(x[:1])
    path = qat.export_qdq_onnx(qmodel, META, tmp_path / "qat.onnx", IMGSZ)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_boxes, onnx_scores = session.run(["boxes", "scores"], {"images": x[:1].numpy()})
    assert np.abs(onnx_boxes - boxes.numpy()).max() < 0.05 and np.abs(onnx_scores - scores.numpy()).max() < 0.01
    plain = build_model(name, num_classes=3)
    plain.load_state_dict(qat.deployed_state_dict(qmodel, x[:1]))
    restored = qat.restore_quantized(plain.eval(), qat.quantization_state(qmodel), x[:1]).eval()
    with torch.no_grad():
        assert torch.allclose(restored(x[:1])[1], scores, atol=1e-6)
