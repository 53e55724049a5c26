"""The tracking app end to end: a synthetic mp4 → real exported int8 TFLite detector and ReID
(through the project's exporter) → DeepSORT → annotated video, MOT text, JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.config import ConfigError
from edgecnn.runtime.app import APP_KEYS, STAGES, load_config, run
from edgecnn.runtime.mot import read_mot
from runtime_models import exported_models, synthetic_video

ROOT = Path(__file__).resolve().parents[1]
# Untrained weights score everything around 0.01: thresholds low enough that tracks form.
LOW = {"conf": 0.005, "track_conf": 0.008, "low_conf": 0.005, "max_det": 20}


@pytest.fixture(scope="module")
def models():
    return exported_models()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=30)


def test_app_tracks_a_video_into_every_sink(models, video, tmp_path):
    out = {"save": tmp_path / "out.mp4", "mot": tmp_path / "results.txt", "jsonl": tmp_path / "tracks.jsonl"}
    report = run({"model": str(models["det_tflite"]), "reid": str(models["reid_tflite"]), "source": str(video),
                  "threads": 2, "cmc": True, **{k: str(v) for k, v in out.items()}, **LOW})
    assert report["frames"] == 30 and report["fps"] > 0
    for stage in STAGES:
        assert report[f"{stage}_ms_p50"] >= 0
    assert report["inference_ms_p50"] > 0 and report["latency_ms_p50"] >= report["inference_ms_p50"]
    assert report["dropped"] == 0 and report["tracks"] > 0
    assert report["artifacts"] == {k: str(v) for k, v in out.items()}

    capture = cv2.VideoCapture(str(out["save"]))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (320, 240)
    capture.release()

    rows = read_mot(out["mot"])
    assert len(rows) and rows[:, 0].min() >= 1 and rows[:, 0].max() <= 30
    assert (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()
    lines = [json.loads(line) for line in out["jsonl"].read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(30))
    json_ids = {t["id"] for line in lines for t in line["tracks"]}
    assert json_ids == set(rows[:, 1].astype(int)) and len(json_ids) == report["tracks"]
    assert {t["name"] for line in lines for t in line["tracks"]} <= {"person", "car"}


def test_app_classes_by_name_and_onnx_detector(models, video, tmp_path):
    out = tmp_path / "cars.jsonl"
    report = run({"model": str(models["det_onnx"]), "source": str(video), "classes": ["car"], "jsonl": str(out),
                  "max_frames": 8, **LOW})
    assert report["frames"] == 8 and "reid_ms_p50" not in report
    classes = {t["class"] for line in out.read_text().splitlines() for t in json.loads(line)["tracks"]}
    assert classes <= {1}


def test_app_entry_point_reads_a_config_file_without_torch_or_tensorflow(models, video, tmp_path):
    """`python -m edgecnn.runtime.app config=…` as the bundle's run.sh calls it; model paths in
    the config are relative to it, and the process never imports torch or TensorFlow."""
    bundle = tmp_path / "bundle"
    (bundle / "models").mkdir(parents=True)
    for key in ("det_tflite", "reid_tflite"):
        (bundle / "models" / models[key].name).write_bytes(models[key].read_bytes())
    config = {"model": f"models/{models['det_tflite'].name}", "reid": f"models/{models['reid_tflite'].name}",
              "source": 0, "threads": 2, **LOW}
    (bundle / "config.json").write_text(json.dumps(config))
    code = (
        "import json, runpy, sys\n"
        "sys.argv = ['edgecnn.runtime.app', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('edgecnn.runtime.app', run_name='__main__')\n"
        "finally:\n"
        "    print(json.dumps({'heavy': [m for m in ('torch', 'tensorflow') if m in sys.modules]}), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, f"config={bundle / 'config.json'}", f"source={video}",
                             f"mot={tmp_path / 'r.txt'}", "max_frames=10", "--json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["frames"] == 10 and report["tracks"] == len(set(read_mot(tmp_path / "r.txt")[:, 1]))
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {"heavy": []}


def test_app_config_errors_name_the_key(models, tmp_path):
    with pytest.raises(ConfigError, match="model= is required"):
        load_config({})
    with pytest.raises(ConfigError, match="unknown key 'treshold'"):
        load_config({"model": "m.tflite", "treshold": 1})
    bad = tmp_path / "config.json"
    bad.write_text('{"model": "m.tflite",\n "conf": }')
    with pytest.raises(ValueError, match=r"config.json:2"):
        load_config({"config": str(bad)})
    with pytest.raises(ConfigError, match="imgsz=640"):
        run({"model": str(models["det_tflite"]), "imgsz": 640, "source": "missing.mp4"})
    with pytest.raises(ConfigError, match="'truck' is not a class"):
        run({"model": str(models["det_tflite"]), "classes": ["truck"], "source": "missing.mp4"})
    assert "max_age" in APP_KEYS and "track_conf" in APP_KEYS  # the tracker's keys are the app's


def test_track_command_on_detections(tmp_path):
    """`edgecnn track detections=det.txt out=…`: the tracker alone, through the CLI."""
    rng = np.random.default_rng(0)
    lines = []
    for frame in range(1, 21):  # two people walking, with a little jitter
        for x, y in [(50, 80), (300, 90)]:
            jx, jy = rng.normal(0, 1, 2)
            lines.append(f"{frame},-1,{x + 4 * frame + jx:.1f},{y + jy:.1f},40,100,0.9,-1,-1,-1")
    det = tmp_path / "det.txt"
    det.write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "edgecnn", "track", f"detections={det}", f"out={tmp_path / 'res'}",
                             "n_init=2", "--json"], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = read_mot(tmp_path / "res" / "results.txt")
    assert report["frames"] == 20 and report["tracks"] == 2
    assert len(rows) >= 2 * 18 and set(rows[:, 1]) == {1, 2}


def test_stage_times_keep_a_window_of_recent_frames():
    """A site runs for weeks: per-frame timings are kept for the last `window` frames, not all."""
    from edgecnn.runtime.app import StageTimes

    times = StageTimes(window=50)
    for i in range(1000):
        times.add("inference", i / 1000)
    assert len(times.samples["inference"]) == 50
    assert times.ms("inference") == pytest.approx(1000 * np.median(np.arange(950, 1000) / 1000), abs=1e-3)
    assert times.recent_ms("inference", 10) == pytest.approx(1000 * np.median(np.arange(990, 1000) / 1000), abs=0.01)
