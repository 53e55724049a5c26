"""A bundle runs in a fresh venv holding only devices/requirements-rpi5.txt: detection + tracking
headless on a video file, MOT results and an annotated video out, and neither torch nor
TensorFlow anywhere in that environment."""

from __future__ import annotations

import json
import subprocess
import tarfile

import cv2
import pytest

from edgecnn.deploy.bundle import build_bundle
from edgecnn.deploy.profiles import load_profile
from edgecnn.runtime.mot import read_mot
from device_venv import device_venv
from runtime_models import exported_models, synthetic_video

LOW = ["conf=0.005", "track_conf=0.008", "low_conf=0.005", "max_det=20"]  # untrained weights score ~0.01


@pytest.fixture(scope="module")
def venv():
    return device_venv("rpi5")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    models = exported_models()
    work = tmp_path_factory.mktemp("device")
    bundle = build_bundle(load_profile("rpi5"), [models["det_tflite"]], [models["reid_tflite"]], work / "dist")
    with tarfile.open(bundle, "r:gz") as tar:
        tar.extractall(work, filter="data")
    return work / bundle.name.removesuffix(".tar.gz")


def device_env(venv) -> dict:
    """What a device shell has: no PYTHONPATH to the checkout, no host packages."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv.parent), "EDGECNN_PYTHON": str(venv / "bin" / "python"),
            "OMP_NUM_THREADS": "2"}


def test_device_venv_has_no_torch_or_tensorflow(venv):
    probe = ("import importlib.util, json\n"
             "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in "
             "('torch', 'tensorflow', 'onnx2tf', 'numpy', 'cv2', 'scipy', 'ai_edge_litert')}))")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                            env=device_env(venv), timeout=60)
    assert json.loads(result.stdout) == {"torch": False, "tensorflow": False, "onnx2tf": False, "numpy": True,
                                         "cv2": True, "scipy": True, "ai_edge_litert": True}


def test_bundle_tracks_a_video_headless_in_the_device_venv(venv, unpacked, tmp_path):
    video = synthetic_video(tmp_path / "clip.mp4", frames=30)
    result = subprocess.run([str(unpacked / "run.sh"), f"source={video}", f"mot={tmp_path / 'results.txt'}",
                             f"save={tmp_path / 'tracked.mp4'}", *LOW, "--json"],
                            capture_output=True, text=True, env=device_env(venv), cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["frames"] == 30 and report["tracks"] > 0 and report["reid_ms_p50"] > 0
    assert "XNNPACK" in result.stderr  # LiteRT's CPU delegate ran the int8 model
    rows = read_mot(tmp_path / "results.txt")
    assert len(rows) > 0 and rows[:, 0].max() <= 30
    capture = cv2.VideoCapture(str(tmp_path / "tracked.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    capture.release()


def test_device_benchmark_runs_in_the_device_venv(venv, unpacked, tmp_path):
    video = synthetic_video(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "bench.json"
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "edgecnn.runtime.bench",
                             f"config={unpacked / 'config.json'}", f"source={video}", f"out={out}", *LOW],
                            capture_output=True, text=True, env={**device_env(venv), "PYTHONPATH": str(unpacked)},
                            cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["app"]["frames"] == 20 and report["model_latency_ms"]["detector"]["p50"] > 0
    assert report["memory"]["rss_peak_mb"] > 10 and report["device"]["cpu_count"] >= 1
