"""`edgecnn val` scores every format through the device's pre/post-processing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from edgecnn.cli import main
from edgecnn.evaluate import validate
from edgecnn.data.yolo import write_data_yaml
from edgecnn.export.onnx import export_onnx
from edgecnn.export.tflite import export_tflite
from edgecnn.export.torch_backend import TorchBackend
from edgecnn.runtime.backends import load_backend
from export_tiny import GT, GT_CLASSES, IMGSZ, META, FixedDetector, random_images, to_model_pixels

@pytest.fixture(scope="module")
def fixed_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixed")
    return export_onnx(FixedDetector(to_model_pixels(GT), GT_CLASSES), META, out / "fixed.onnx", imgsz=IMGSZ)


def test_perfect_detector_scores_one_in_torch_and_onnx(dataset, fixed_onnx):
    model = FixedDetector(to_model_pixels(GT), GT_CLASSES)
    for backend in (TorchBackend(model, META, imgsz=IMGSZ), load_backend(fixed_onnx)):
        scores = validate(backend, dataset)
        assert scores["images"] == 3
        assert scores["mAP50_95"] == pytest.approx(1.0) and scores["precision"] == pytest.approx(1.0)
        assert scores["latency_ms_p50"] > 0


def test_shifted_boxes_lower_the_strict_thresholds_only(dataset, tmp_path):
    shifted = to_model_pixels(GT) + np.array([3, 0, 3, 0], np.float32)  # IoU about 0.85 with the truth
    scores = validate(TorchBackend(FixedDetector(shifted, GT_CLASSES), META, imgsz=IMGSZ), dataset)
    assert scores["mAP50"] == pytest.approx(1.0)
    assert 0.3 < scores["mAP50_95"] < 0.9


def test_tflite_scores_like_onnx(dataset, fixed_onnx, tmp_path):
    tflite = export_tflite(fixed_onnx, tmp_path / "fixed.tflite", random_images(2), precision="fp32")
    assert validate(load_backend(tflite), dataset)["mAP50_95"] == pytest.approx(1.0)


def test_val_command_json(dataset, fixed_onnx, capsys):
    assert main(["val", str(fixed_onnx), f"data={dataset}", "conf=0.01", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "onnx" and result["mAP50_95"] == pytest.approx(1.0)
    assert set(result) >= {"mAP50", "precision", "recall", "latency_ms_p50"}


def test_val_checkpoint_through_the_registry(dataset, tmp_path, capsys):
    from edgecnn.models import build_model, save_checkpoint

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "best.pt", build_model("yolo-n", num_classes=2), dict(META, imgsz=64))
    assert main(["val", f"model={checkpoint}", f"data={dataset}", "max_images=2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "torch" and result["images"] == 2 and 0.0 <= result["mAP50_95"] <= 1.0


def test_val_errors_name_the_problem(dataset, fixed_onnx, tmp_path, capsys):
    assert main(["val", str(tmp_path / "none.onnx"), f"data={dataset}"]) == 1
    err = capsys.readouterr().err
    assert "model file not found" in err and "none.onnx" in err
    other = write_data_yaml(tmp_path / "three.yaml", ["a", "b", "c"], str(dataset.parent / "images/train"),
                            str(dataset.parent / "images/val"))
    assert main(["val", str(fixed_onnx), f"data={other}"]) == 1
    assert "fixed.onnx has 2 classes but" in capsys.readouterr().err


def test_classifier_val_is_the_same_in_torch_and_onnx(tmp_path):
    """Two colour classes a 1-layer model separates: top1 is 1.0 in every format."""
    from edgecnn.data.imagefolder import load_imagefolder

    for split in ("train", "val"):
        for name, colour in (("red", (0, 0, 255)), ("blue", (255, 0, 0))):
            folder = tmp_path / "cls" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 50, 3), colour, np.uint8))
    names = list(load_imagefolder(tmp_path / "cls").names)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    with torch.no_grad():  # logit of a class = the mean of its colour channel (RGB)
        blue_first = names == ["blue", "red"]
        model[2].weight.copy_(torch.tensor([[0.0, 0, 1], [1, 0, 0]] if blue_first else [[1.0, 0, 0], [0, 0, 1]]))
        model[2].bias.zero_()
    meta = {"task": "classify", "names": names, "mean": [0.0] * 3, "std": [1.0] * 3}
    onnx_path = export_onnx(model, meta, tmp_path / "cls.onnx", imgsz=32)
    for backend in (TorchBackend(model, meta, imgsz=32), load_backend(onnx_path)):
        scores = validate(backend, tmp_path / "cls")
        assert scores["images"] == 6 and scores["top1"] == pytest.approx(1.0) and scores["latency_ms_p50"] > 0


def test_training_validation_and_edgecnn_val_give_one_answer(dataset):
    """The trainer's end-of-epoch mAP and `edgecnn val` agree on the same weights: both clip each
    box to its image (here a box overhangs the frame's bottom edge into the letterbox padding,
    IoU 0.67 unclipped and 0.8 clipped, so a path that did not clip would score lower)."""
    from edgecnn.train.trainer import evaluate

    overhang = to_model_pixels(GT) + np.array([[0, 0, 0, 0], [0, 0, 0, 16]], np.float32)
    model = FixedDetector(overhang, GT_CLASSES)
    model.task, model.strides = "detect", (8, 16, 32)
    device = validate(TorchBackend(model, META, imgsz=IMGSZ), dataset)
    training = evaluate(model, str(dataset), cfg={"workers": 0, "batch": 2}, meta=META)
    assert 0.5 < device["mAP50_95"] < 1.0
    for key in ("mAP50_95", "mAP50", "precision", "recall"):
        assert training[key] == pytest.approx(device[key], abs=1e-6), key
