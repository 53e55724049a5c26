"""`edgecnn export` as a pipeline stage: artifacts, parity, size, latency, mAP and the int8 gate."""

from __future__ import annotations

import json

import pytest
import torch

from edgecnn.cli import main
from edgecnn.commands import export as export_command
from edgecnn.export.onnx import export_onnx
from edgecnn.metrics.gate import GateError
from export_tiny import IMGSZ, META, FixedDetector
from export_tiny import GT, GT_CLASSES, to_model_pixels


def run_export(**overrides):
    cfg = export_command.KEYS.resolve(dict(runs=3, threads=1, **overrides))
    return export_command.run(cfg)


def test_checkpoint_to_onnx_reports_everything(dataset, tmp_path, capsys):
    from edgecnn.models import build_model, save_checkpoint

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "best.pt", build_model("yolo-n", num_classes=2), dict(META, imgsz=64))
    assert main(["export", str(checkpoint), "format=onnx", f"data={dataset}", f"out={tmp_path / 'out'}",
                 "runs=3", "threads=1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["artifacts"] == {"onnx": str(tmp_path / "out" / "best.onnx")}
    assert max(result["parity_max_abs_diff"].values()) < 1e-3
    assert result["size_mb"] > 0.5 and result["latency_ms_p90"] >= result["latency_ms_p50"] > 0
    assert 0 <= result["mAP50_95"] <= 1 and result["images"] == 3


def test_int8_gate_passes_and_fails(dataset, tmp_path):
    good = export_onnx(FixedDetector(to_model_pixels(GT), GT_CLASSES), META, tmp_path / "good.onnx", imgsz=IMGSZ)
    result = run_export(model=str(good), format="tflite", precision="int8", io="uint8", data=str(dataset),
                        out=str(tmp_path / "out"))
    assert result["artifacts"]["tflite"].endswith("good_int8_uint8.tflite")
    assert result["mAP50_95"] > 0.9 and result["mAP50_95_drop"] <= 1.0
    assert result["reference_mAP50_95"] == pytest.approx(1.0)
    # the artifact carries the operating point measured on its own int8 scores; the input ONNX is left alone
    from edgecnn.runtime.backends import load_backend

    point = load_backend(result["artifacts"]["tflite"]).meta["operating_point"]
    assert point == {**result["operating_point"], "measured_on": f"{dataset} val (3 images)"}
    assert point["recall"] == pytest.approx(1.0) and "operating_point" not in load_backend(good).meta
    # a model that finds one of the two objects, judged against the perfect one: the gate must stop it
    half = export_onnx(FixedDetector(to_model_pixels(GT[:1]), GT_CLASSES[:1]), META, tmp_path / "half.onnx", imgsz=IMGSZ)
    # and no remedy can help it: each is tried and scored, then the refusal names the closest
    with pytest.raises(GateError, match=r"mAP50_95 fell from 100.00.*no int8 remedy passes either \(drop in points: "
                                        r"as asked: \d+\.\d+; 32 calibration images: .*closest: "):
        run_export(model=str(half), format="tflite", precision="int8", data=str(dataset), reference=str(good),
                   calib_images=8, out=str(tmp_path / "out2"))
    assert len(list((tmp_path / "out2").glob("half_int8_remedy*.tflite"))) == 3


@pytest.mark.heavy
@pytest.mark.slow
def test_gate_tries_a_short_qat_of_a_checkpoint_last(dataset, tmp_path):
    """From a checkpoint, the last remedy is a QAT on the train split: it runs, is exported and
    scored like the others, and the refusal lists it."""
    from edgecnn.models import build_model, save_checkpoint

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "best.pt", build_model("yolo-n", num_classes=2), dict(META, imgsz=64))
    good = export_onnx(FixedDetector(to_model_pixels(GT), GT_CLASSES), META, tmp_path / "good.onnx", imgsz=IMGSZ)
    with pytest.raises(GateError, match=r"as asked: .*; 32 calibration images: .*; "
                                        r"1-epoch QAT on the train split, 32 calibration images: \d+\.\d+"):
        run_export(model=str(checkpoint), format="tflite", precision="int8", io="uint8", data=str(dataset),
                   reference=str(good), calib_images=8, recover_qat_epochs=1, out=str(tmp_path / "out"))
    qat = json.loads((tmp_path / "out" / "qat_remedy2" / "qat.json").read_text())
    assert qat["config"]["epochs"] == 1 and qat["parent"] == str(checkpoint)
    assert (tmp_path / "out" / "qat_int8_uint8_remedy2.tflite").is_file()


def test_bad_requests_are_config_errors(dataset, tmp_path, capsys):
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"x")
    assert main(["export", str(onnx_path), "format=onnx", f"data={dataset}"]) == 2
    assert "already an ONNX file" in capsys.readouterr().err
    assert main(["export", str(onnx_path), "format=tflite", "dynamic=true", f"data={dataset}"]) == 2
    assert main(["export", str(onnx_path), "format=tflite"]) == 2
    assert "give data=" in capsys.readouterr().err
    (tmp_path / "best_int8.tflite").write_bytes(b"x")
    assert main(["export", str(tmp_path / "best_int8.tflite"), f"data={dataset}"]) == 2
    assert "give the .pt or ONNX it came from" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope.pt"), f"data={dataset}"]) == 1
    assert "nope.pt" in capsys.readouterr().err


def test_calibration_images_come_from_train_parity_images_from_val(dataset):
    from edgecnn.export.parity import image_paths

    assert all(p.parent.name == "train" for p in image_paths(dataset, 8, split="train"))
    assert all(p.parent.name == "val" for p in image_paths(dataset, 8))  # parity images: val
