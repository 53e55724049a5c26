"""Int8 QAT with NNCF: BN folding keeps the function, the quantized model trains, exports ONNX
with QuantizeLinear/DequantizeLinear that ONNX Runtime runs like torch, and reloads from a
weights_only checkpoint."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from compress_data import DETECTOR_IMGSZ, DETECTOR_META, calibration_dir, train_cfg, trained_lenet, write_quadrant_dataset
from edgecnn.compress import qat
from edgecnn.models import build_model, load_checkpoint, read_checkpoint

IMGSZ, META = DETECTOR_IMGSZ, DETECTOR_META


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def detector() -> nn.Module:
    model = build_model("yolo-n", num_classes=3)
    for m in model.modules():  # trained-looking statistics, so folding has something to fold
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_folding_batchnorm_keeps_the_function_in_eval_and_training_mode():
    model = detector()
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        boxes, scores = model(x)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert qat.fold_batchnorm(model, x[:1]) == batchnorms
    with torch.no_grad():
        folded_boxes, folded_scores = model.eval()(x)
        train_boxes = model.train()(x)[0]  # no batch statistics in training mode either
    assert torch.allclose(boxes, folded_boxes, atol=1e-4)
    assert torch.allclose(scores, folded_scores, atol=1e-5)
    assert torch.allclose(train_boxes, folded_boxes, atol=1e-5)
    assert all(type(m) is qat.FoldedBatchNorm2d for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_quantized_detector_trains_exports_qdq_and_reloads(tmp_path):
    import onnxruntime as ort

    from edgecnn.train.losses import DetectionLoss

    model = detector()
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    qat.fold_batchnorm(model, x[:1])
    calibration = qat.calibration_tensors(calibration_dir(tmp_path), IMGSZ, META["mean"], META["std"])
    assert calibration[0].shape == (1, 3, IMGSZ, IMGSZ)
    qmodel = qat.quantize(model, calibration, subset_size=4)

    scales = {k: v.detach().clone() for k, v in qmodel.named_parameters() if k.endswith("_scale_param_storage")}
    assert scales, "no quantizers were placed"
    targets = torch.tensor([[0, 0, 4, 6, 30, 40], [1, 2, 34, 20, 60, 58]], dtype=torch.float32)
    loss_fn = DetectionLoss(3, qmodel.strides)
    optimizer = torch.optim.Adam([p for p in qmodel.parameters() if p.requires_grad], lr=1e-3)
    qmodel.train()
    for _ in range(3):
        loss = loss_fn(qmodel(x), targets, (IMGSZ, IMGSZ))[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    learned = dict(qmodel.named_parameters())
    assert any(not torch.equal(learned[k], v) for k, v in scales.items())  # the int8 ranges train too

    qmodel.eval()
    with torch.no_grad():
        boxes, scores = qmodel(x[:1])
    path = qat.export_qdq_onnx(qmodel, META, tmp_path / "qat.onnx", IMGSZ)
    graph = onnx.load(str(path))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") >= ops.count("QuantizeLinear")
    per_channel = [n for n in graph.graph.node if n.op_type == "DequantizeLinear"
                   and any(a.name == "axis" for a in n.attribute)]
    assert per_channel, "weights should be quantized per output channel"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_boxes, onnx_scores = session.run(["boxes", "scores"], {"images": x[:1].numpy()})
    assert np.abs(onnx_boxes - boxes.numpy()).max() < 0.05
    assert np.abs(onnx_scores - scores.numpy()).max() < 0.01

    torch.save({"state_dict": qat.deployed_state_dict(qmodel, x[:1]), "quantization": qat.quantization_state(qmodel)},
               tmp_path / "qat.pt")
    saved = torch.load(tmp_path / "qat.pt", weights_only=True)
    plain = build_model("yolo-n", num_classes=3)
    plain.load_state_dict(saved["state_dict"])
    restored = qat.restore_quantized(plain.eval(), saved["quantization"], x[:1]).eval()
    with torch.no_grad():
        again_boxes, again_scores = restored(x[:1])
    assert torch.allclose(again_boxes, boxes, atol=1e-5) and torch.allclose(again_scores, scores, atol=1e-6)


def test_qat_command_on_a_trained_classifier(tmp_path):
    from edgecnn.commands import qat as qat_command
    from edgecnn.runtime.backends import load_backend

    data = write_quadrant_dataset(tmp_path / "quad")
    ckpt = trained_lenet(data, tmp_path)
    cfg = qat_command.KEYS.resolve({"model": str(ckpt), "out": str(tmp_path / "qat"), "epochs": 1,
                                    "subset_size": 32, "max_map_drop": 5.0, **train_cfg(data)})
    result = qat_command.run(cfg)
    assert result["top1"] >= result["top1_float"] - 0.05 and result["top1_float"] > 0.9
    report = json.loads((tmp_path / "qat" / "qat.json").read_text())
    assert report["gate"]["passed"] and report["ptq"] == result["top1_ptq"]

    plain, meta = load_checkpoint(result["artifacts"]["model"])  # deployed weights, no NNCF needed
    assert "quantization" in read_checkpoint(result["artifacts"]["model"])
    backend = load_backend(result["artifacts"]["onnx"], threads=1)
    ops = {n.op_type for n in onnx.load(result["artifacts"]["onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    images = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                       for p in sorted((data / "val").rglob("*.png"))[:24]])
    labels = np.array([int(p.parent.name[1]) for p in sorted((data / "val").rglob("*.png"))[:24]])
    onnx_top1 = (backend.predict(images)["logits"].argmax(1) == labels).mean()
    assert onnx_top1 >= 0.9
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) \
        / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        float_top1 = (plain(x).argmax(1).numpy() == labels).mean()
    assert float_top1 >= 0.9  # the deployed weights also run as a plain float model


def test_layers_left_in_float_get_no_quantizers(tmp_path):
    model = detector()
    qat.fold_batchnorm(model, torch.rand(1, 3, IMGSZ, IMGSZ))
    calibration = qat.calibration_tensors(calibration_dir(tmp_path), IMGSZ, META["mean"], META["std"])

    def quantizers(qmodel):
        return sum(k.endswith("_scale_param_storage") for k, _ in qmodel.named_parameters())

    every_layer = quantizers(qat.quantize(model, calibration, subset_size=4))
    head_in_float = quantizers(qat.quantize(model, calibration, subset_size=4, float_patterns=[".*head.*"]))
    assert 0 < head_in_float < every_layer
