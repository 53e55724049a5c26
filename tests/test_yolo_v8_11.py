"""edgecnn's YOLOv8 / YOLO11 models: the export form computes the same function; they prune,
rebuild from a pruned checkpoint and quantize."""

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


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_pruned_to_half_the_macs_rebuilds_from_its_checkpoint_and_trains(name, tmp_path, one_torch_thread):
    from edgecnn.compress.prune import ChannelPruner, count_macs_params
    from edgecnn.models import load_checkpoint, save_checkpoint
    from edgecnn.models.yolo_v8_11 import SplitInput
    from edgecnn.train.losses import DetectionLoss

    model = randomized(name)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.2, 1.0)  # a fresh model's equal scales give no channel ranking
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    macs_before, _ = count_macs_params(model, x[:1])
    pruner = ChannelPruner(model, x[:1])
    with torch.no_grad():  # the prunable form (first convs split in two) computes the same function
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(before, model.eval()(x)))
    macs = pruner.prune_to(0.5 * macs_before)
    assert 0.3 * macs_before < macs <= 0.5 * macs_before
    blocks = [m for m in model.modules() if isinstance(m, SplitInput)]
    assert any(a != b for a, b in (m.half_widths() for m in blocks)), "the two halves are pruned independently"

    save_checkpoint(tmp_path / "pruned.pt", model, {"mean": [0.0] * 3, "std": [1.0] * 3})
    restored, _ = load_checkpoint(tmp_path / "pruned.pt")
    with torch.no_grad():
        pruned = model.eval()(x)
        assert [o.shape for o in pruned] == [o.shape for o in before]
        assert all(torch.equal(a, b) for a, b in zip(pruned, restored(x)))
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(pruned, restored.for_export()(x)))
    targets = torch.tensor([[0, 0, 4, 6, 30, 40], [1, 2, 34, 20, 60, 58]], dtype=torch.float32)
    loss = DetectionLoss(3, restored.strides)(restored.train()(x), targets, (64, 64))[0]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in restored.parameters() if p.requires_grad)


def test_qat_trains_exports_qdq_and_reloads(tmp_path):
    name = "yolo11n"  # C3k2 (a C2f) and the attention blocks
    import onnxruntime as ort

    from edgecnn.compress import qat
    from edgecnn.train.losses import DetectionLoss
    from compress_data import DETECTOR_IMGSZ as IMGSZ, DETECTOR_META as META, calibration_dir

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
