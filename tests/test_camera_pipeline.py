"""pipelines/camera.yaml, small: an annotated synthetic video → YOLO dataset → yolo-n → int8 TFLite
that carries its operating point → tracking the rest of the video with default keys → MOT scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.pipeline import load_pipeline, run_pipeline
from edgecnn.runtime.backends import load_backend

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"videos.frames": 40, "dataset.train_frames": "1-16", "dataset.val_frames": "17-24", "calib.n": 4,
         "train.batch": 4, "tflite.calib_images": 4, "tflite.runs": 2, "tflite.parity_images": 2}


@pytest.mark.heavy
def test_camera_pipeline_runs_end_to_end_with_the_artifacts_operating_point(tmp_path):
    pytest.importorskip("onnx2tf", reason="onnx2tf (the train extra) converts to TFLite")
    pipeline = load_pipeline(ROOT / "pipelines" / "camera.yaml", SMALL, variant="fast")
    report = run_pipeline(pipeline, tmp_path / "runs")
    assert all(s["status"] == "ran" for s in report["stages"].values())
    stages = tmp_path / "runs" / "camera"
    result = {name: json.loads((stages / name / "manifest.json").read_text())["result"]
              for name in ("dataset", "tflite", "track", "mot")}
    point = load_backend(result["tflite"]["artifacts"]["tflite"]).meta["operating_point"]
    assert 0 < point["track_conf"] < 1 and 2 <= point["n_init"] <= 5 and "val" in point["measured_on"]
    used = result["track"]["thresholds"]
    assert (used["track_conf"], used["low_conf"], used["n_init"]) == (point["track_conf"], point["low_conf"],
                                                                     point["n_init"])
    assert result["track"]["frames"] == 16  # frames 25-40: what the detector never saw
    assert 0.0 <= result["mot"]["IDF1"] <= 1.0 and result["mot"]["GT"] > 0
