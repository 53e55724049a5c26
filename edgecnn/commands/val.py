"""`edgecnn val`: score a checkpoint, ONNX or TFLite model on a dataset.

Every format goes through the same backend interface and the same letterbox, decoding and NMS
as the device (`edgecnn.runtime.detector`), so the figures are the device's figures.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edgecnn.config import Key, Schema

HELP = "validate a checkpoint, ONNX or TFLite model on a dataset"
POSITIONAL = ("model",)
LOG = logging.getLogger(__name__)

KEYS = Schema(
    Key("model", None, "a .pt checkpoint, .onnx or .tflite"),
    Key("data", None, "data.yaml (detect) or an ImageFolder directory (classify)"),
    Key("imgsz", None, "input size for a .pt checkpoint (an export's size is fixed)", type=int, min=32),
    Key("conf", 0.001, "detection confidence threshold", min=0.0, max=1.0),
    Key("iou", 0.6, "NMS IoU threshold", min=0.0, max=1.0),
    Key("max_det", 300, "detections kept per image", min=1),
    Key("split", "val", "dataset split to score"),
    Key("batch", 8, "images per backend call (TFLite models take one at a time)", min=1),
    Key("threads", None, "CPU threads of the backend", type=int, min=1),
    Key("max_images", None, "score only the first N images", type=int, min=1),
    Key("save_operating_point", False, "detect: write the measured operating point (the tracker's thresholds for "
        "this detector) into the .onnx/.tflite, where `edgecnn track` reads it"),
)


def run(cfg: dict) -> dict:
    from edgecnn.config import ConfigError
    from edgecnn.export.torch_backend import load_host_backend

    for key in ("model", "data"):
        if not cfg[key]:
            raise ConfigError(f"edgecnn val: {key}= is required")
    if cfg["save_operating_point"] and Path(cfg["model"]).suffix.lower() not in (".onnx", ".tflite"):
        raise ConfigError("edgecnn val: save_operating_point=true writes into an exported .onnx or .tflite, "
                          f"not {cfg['model']}")
    backend = load_host_backend(cfg["model"], threads=cfg["threads"], imgsz=cfg["imgsz"])
    result = validate(backend, cfg["data"], conf=cfg["conf"], iou=cfg["iou"], max_det=cfg["max_det"],
                      split=cfg["split"], batch=cfg["batch"], max_images=cfg["max_images"])
    if cfg["save_operating_point"]:
        from edgecnn.metrics.operating_point import store_operating_point

        store_operating_point(cfg["model"], result, cfg["data"], cfg["split"])
    return {"model": str(cfg["model"]), "format": backend.kind, **result}


def validate(backend, data, conf: float = 0.001, iou: float = 0.6, max_det: int = 300, split: str = "val",
             batch: int = 8, max_images: int | None = None) -> dict:
    """Metrics of `backend` on `data`'s `split`, plus the median per-image latency (pre + model + post)."""
    task = backend.meta["task"]
    if task == "detect":
        return validate_detector(backend, data, conf, iou, max_det, split, batch, max_images)
    if task == "classify":
        return validate_classifier(backend, data, split, batch, max_images)
    raise ValueError(f"{backend.path}: edgecnn val scores detectors and classifiers, not '{task}' models")


def validate_detector(backend, data, conf, iou, max_det, split, batch, max_images) -> dict:
    import numpy as np
    from tqdm import tqdm

    from edgecnn.data.yolo import load_data_yaml, scan_split
    from edgecnn.metrics.detection import DetectionMetrics
    from edgecnn.metrics.operating_point import ScoreCurve
    from edgecnn.runtime.detector import Detector

    spec = load_data_yaml(data)
    names = list(backend.meta["names"])
    if len(names) != spec.nc:
        raise ValueError(f"{backend.path} has {len(names)} classes but {data} has {spec.nc}")
    scan = scan_split(spec, split, check_images=False)
    samples = list(scan)[:max_images]
    detector = Detector(backend, conf=conf, iou=iou, max_det=max_det)
    metrics, curve = DetectionMetrics(spec.nc, names), ScoreCurve()
    per_image_ms = []
    for start in tqdm(range(0, len(samples), batch), desc=f"val {Path(backend.path).name}", unit="batch", leave=False):
        chunk = samples[start : start + batch]
        frames = [_read_bgr(path) for path, _ in chunk]
        tic = time.perf_counter()
        results = detector.detect_batch(frames)
        per_image_ms.append((time.perf_counter() - tic) * 1e3 / len(frames))
        for frame, (_, labels), det in zip(frames, chunk, results):
            h, w = frame.shape[:2]
            cx, cy, bw, bh = labels[:, 1] * w, labels[:, 2] * h, labels[:, 3] * w, labels[:, 4] * h
            gt = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
            metrics.update(det.xyxy, det.scores, det.classes, gt, labels[:, 0].astype(np.int64))
            curve.update(det.xyxy, det.scores, det.classes, gt, labels[:, 0].astype(np.int64))
    scores = metrics.compute()
    out = {k: scores[k] for k in ("mAP50_95", "mAP50", "precision", "recall")}
    out["operating_point"] = curve.operating_point()
    out.update(images=len(samples), latency_ms_p50=float(np.median(per_image_ms)) if per_image_ms else None)
    return out


def validate_classifier(backend, data, split, batch, max_images) -> dict:
    import numpy as np

    from edgecnn.data.imagefolder import load_imagefolder, scan_folder
    from edgecnn.data.loaders import read_rgb
    from edgecnn.metrics.classification import ClassificationMetrics
    from edgecnn.runtime.preprocess import letterbox

    spec = load_imagefolder(data)
    scan = scan_folder(spec, split, check_images=False)
    samples = list(scan)[:max_images]
    metrics = ClassificationMetrics(spec.nc, list(scan.names))
    per_image_ms = []
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        images = np.stack([letterbox(read_rgb(path), backend.input_size)[0] for path, _ in chunk])
        tic = time.perf_counter()
        logits = backend.predict(images)["logits"]
        per_image_ms.append((time.perf_counter() - tic) * 1e3 / len(chunk))
        metrics.update(logits, [label for _, label in chunk])
    scores = metrics.compute()
    return {"top1": scores["top1"], "top5": scores.get("top5"), "images": len(samples),
            "latency_ms_p50": float(np.median(per_image_ms)) if per_image_ms else None}


def _read_bgr(path: Path):
    import cv2

    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError(f"{path}: cannot read image")
    return frame
