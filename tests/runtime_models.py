"""Real exported models for the runtime, app and bundle tests: a detector and a ReID embedder.

They are exported once with the project's own exporter (ONNX, then int8 TFLite through onnx2tf)
from seeded, untrained weights and cached under ~/.cache keyed by the exporter's and models'
sources and the converters' versions, so reruns take no time. Untrained weights give low,
arbitrary scores: tests that need tracks lower the thresholds.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DETECTOR_IMGSZ = 320
NAMES = ["person", "car"]
# What decides the exported bytes and how the runtime reads them (the cache key): every source
# of the models and the exporter, the runtime code that calibrates and reads them, the versions
# of the converters.
SOURCES = ["tests/runtime_models.py", "tests/export_tiny.py", "edgecnn/models", "edgecnn/export",
           "edgecnn/runtime/backends.py", "edgecnn/runtime/preprocess.py"]
PACKAGES = ["torch", "onnx", "onnx2tf", "tensorflow"]


def _cache_key() -> str:
    digest = hashlib.sha256()
    for rel in SOURCES:
        path = ROOT / rel
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0" + file.read_bytes())
    for name in PACKAGES:
        digest.update(f"{name}=={metadata.version(name)}\n".encode())
    return digest.hexdigest()[:16]


def calibration_frames(size: tuple[int, int], n: int = 8) -> np.ndarray:
    """uint8 RGB frames letterboxed to `size`: real traffic video when present, else seeded noise."""
    import cv2

    from edgecnn.runtime.preprocess import letterbox

    video = ROOT.parent / "shared" / "data" / "video" / "car_traffic_small.mp4"
    frames = []
    capture = cv2.VideoCapture(str(video))
    while len(frames) < n:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(letterbox(frame, size)[0], cv2.COLOR_BGR2RGB))
        for _ in range(20):
            capture.grab()
    capture.release()
    rng = np.random.default_rng(0)
    while len(frames) < n:
        frames.append(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return np.stack(frames)


def spread_statistics(model, prior: float = 0.2):
    """Random BatchNorm statistics and a class prior of `prior`, so an untrained detector's scores
    differ across anchors and images: a fresh head scores everything about 0.01, which int8's
    fixed 1/256 sigmoid step turns into one constant."""
    import torch
    from torch import nn

    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 2.0)
            if hasattr(m, "reset_bias"):
                m.reset_bias(prior=prior)
    return model


def _export(dest: Path, detector_name: str) -> None:
    import torch

    from edgecnn.export.onnx import export_onnx
    from edgecnn.export.tflite import export_tflite
    from edgecnn.models import build_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    common = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    if detector_name == "tiny":
        from tests.export_tiny import tiny_detector

        detector = tiny_detector()
    else:
        detector = spread_statistics(build_model(detector_name, num_classes=len(NAMES)))
    det_meta = {"task": "detect", "names": NAMES, "imgsz": DETECTOR_IMGSZ, "strides": [8, 16, 32], **common}
    export_onnx(detector, det_meta, dest / "det.onnx", imgsz=DETECTOR_IMGSZ)
    export_tflite(dest / "det.onnx", dest / "det_int8.tflite", calibration_frames((DETECTOR_IMGSZ, DETECTOR_IMGSZ)),
                  precision="int8")
    reid = build_model("reid")
    reid_meta = {"task": "embed", "names": [], "imgsz": 128, **common}
    export_onnx(reid, reid_meta, dest / "reid.onnx", imgsz=[128, 64])
    export_tflite(dest / "reid.onnx", dest / "reid_int8.tflite", calibration_frames((128, 64)), precision="int8")


def exported_models(detector: str = "tiny") -> dict[str, Path]:
    """{"det_onnx", "det_tflite", "reid_onnx", "reid_tflite"}: paths of the cached exports.

    `detector`: "tiny" (tests/export_tiny.py: converts in seconds, for tests) or a zoo name such
    as "yolo-n" (a minute or more; for benchmarks, where the network's cost is what is measured).
    """
    cache = Path(os.environ.get("EDGECNN_TEST_CACHE", Path.home() / ".cache" / "edgecnn-test-models"))
    cache = cache / f"{detector}-{_cache_key()}"
    if not (cache / "reid_int8.tflite").is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache.parent))
        try:
            _export(work, detector)
            work.rename(cache) if not cache.exists() else None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return {"det_onnx": cache / "det.onnx", "det_tflite": cache / "det_int8.tflite",
            "reid_onnx": cache / "reid.onnx", "reid_tflite": cache / "reid_int8.tflite"}


def synthetic_video(path: Path, frames: int = 30, size: tuple[int, int] = (320, 240), fps: float = 15.0) -> Path:
    """A short mp4 of two coloured squares moving across a textured background (OpenCV-written)."""
    import cv2

    w, h = size
    rng = np.random.default_rng(1)
    background = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (9, 9), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        image = background.copy()
        cv2.rectangle(image, (10 + 5 * i, 40), (60 + 5 * i, 120), (0, 0, 255), -1)
        cv2.rectangle(image, (w - 70 - 4 * i, 120), (w - 20 - 4 * i, 200), (255, 128, 0), -1)
        cv2.putText(image, str(i), (5, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        writer.write(image)
    writer.release()
    return path
