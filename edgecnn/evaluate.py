"""Validation of an artifact: a checkpoint, an ONNX or a TFLite model, scored on a dataset split.

Every format goes through the same backend interface (`edgecnn.export.torch_backend.load_host_backend`
for a `.pt`) and the same letterbox, decoding, NMS and un-letterbox as the device
(`edgecnn.runtime.detector.Detector`), so the figures are the device's figures. `edgecnn val`,
`edgecnn export`'s per-artifact scores and the benchmarks call `validate`.

The trainer's end-of-epoch validation (`edgecnn.train.tasks`, on batches of torch tensors) scores
the same detections: both clip every predicted box to its image, so on the same weights and keys
(`val_conf`/`conf`, `val_iou`/`iou`, max_det 300) the two give the same mAP up to float rounding
(tests/test_val.py checks it). What may still differ, by design: the trainer validates under
autocast on CUDA (`amp`), and `val_conf`/`val_iou` are training keys a run may set apart from
`edgecnn val`'s `conf`/`iou`.
"""

from __future__ import annotations

import time
from pathlib import Path


def validate(backend, data, conf: float = 0.001, iou: float = 0.6, max_det: int = 300, split: str = "val",
             batch: int = 8, max_images: int | None = None) -> dict:
    """Metrics of `backend` on `data`'s `split`, plus the median per-image latency (pre + model + post)."""
    task = backend.meta["task"]
    if task == "detect":
        return validate_detector(backend, data, conf, iou, max_det, split, batch, max_images)
    if task == "classify":
        return validate_classifier(backend, data, split, batch, max_images)
    if task == "segment":
        return validate_segmenter(backend, data, split, max_images)
    raise ValueError(f"{backend.path}: edgecnn val scores detectors, classifiers and segmenters, not '{task}' models")


def validate_detector(backend, data, conf, iou, max_det, split, batch, max_images) -> dict:
    import numpy as np
    from tqdm import tqdm

    from edgecnn.data import open_task_dataset
    from edgecnn.data.yolo import scan_split
    from edgecnn.metrics.detection import DetectionMetrics
    from edgecnn.metrics.operating_point import ScoreCurve
    from edgecnn.runtime.boxes import cxcywh_to_xyxy
    from edgecnn.runtime.detector import Detector

    spec = open_task_dataset(data, "detect")
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
            gt = cxcywh_to_xyxy(labels[:, 1:5] * np.array([w, h, w, h], labels.dtype))
            metrics.update(det.xyxy, det.scores, det.classes, gt, labels[:, 0].astype(np.int64))
            curve.update(det.xyxy, det.scores, det.classes, gt, labels[:, 0].astype(np.int64))
    scores = metrics.compute()
    out = {k: scores[k] for k in ("mAP50_95", "mAP50", "precision", "recall")}
    out["operating_point"] = curve.operating_point()
    out.update(images=len(samples), latency_ms_p50=float(np.median(per_image_ms)) if per_image_ms else None)
    return out


def validate_classifier(backend, data, split, batch, max_images) -> dict:
    import numpy as np

    from edgecnn.data import open_task_dataset
    from edgecnn.data.imagefolder import scan_folder
    from edgecnn.data.loaders import read_rgb
    from edgecnn.metrics.classification import ClassificationMetrics
    from edgecnn.runtime.preprocess import letterbox

    spec = open_task_dataset(data, "classify")
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


def validate_segmenter(backend, data, split, max_images) -> dict:
    """mIoU, per-class IoU and pixel accuracy at each image's own size, through the device's
    `runtime.segmenter.Segmenter`: letterbox, the model, its upsampling (the artifact's
    `seg_upsample`) and argmax, the class map cut out of the letterbox and resized back (nearest)."""
    from edgecnn.data import open_task_dataset
    from edgecnn.data.loaders import read_rgb
    from edgecnn.data.segment import read_mask, scan_segment_split
    from edgecnn.metrics.segmentation import score_segmentation
    from edgecnn.runtime.segmenter import Segmenter

    spec = open_task_dataset(data, "segment")
    names = list(backend.meta["names"])
    if len(names) != spec.nc:
        raise ValueError(f"{backend.path} has {len(names)} classes but {data} has {spec.nc}")
    pairs = scan_segment_split(spec, split, check=False)[:max_images]
    samples = ((image, read_mask(source, path, spec, image.shape[:2]))
               for path, source in pairs for image in [read_rgb(path)])
    segmenter = Segmenter(backend)
    scores = score_segmentation(lambda image: segmenter.segment(image, bgr=False), samples, names, spec.ignore_index)
    return {k: scores[k] for k in ("mIoU", "pixel_acc", "mean_acc", "iou", "images", "latency_ms_p50")}


def _read_bgr(path: Path):
    import cv2

    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError(f"{path}: cannot read image")
    return frame


def segmentation_samples(backend, data, path, split: str = "val", count: int = 4) -> Path:
    """A PNG of `count` images of `split` (evenly spread), each as image | ground truth | the
    device path's prediction, in the app's class colours (ignored pixels black)."""
    import numpy as np

    from edgecnn.data import open_task_dataset
    from edgecnn.data.loaders import read_rgb
    from edgecnn.data.segment import read_mask, scan_segment_split
    from edgecnn.plots import figure, save_figure
    from edgecnn.runtime.segmenter import Segmenter, palette

    spec = open_task_dataset(data, "segment")
    pairs = scan_segment_split(spec, split, check=False)
    picks = [pairs[i] for i in dict.fromkeys(np.linspace(0, len(pairs) - 1, min(count, len(pairs))).astype(int))]
    segmenter = Segmenter(backend)
    colors = np.concatenate([palette(spec.nc)[:, ::-1], np.zeros((1, 3), np.uint8)])  # RGB; the last: ignored

    def paint(classes):
        return colors[np.where(classes < spec.nc, classes, spec.nc)]

    fig, axes = figure(len(picks), 3, figsize=(9, 2.4 * len(picks)), squeeze=False)
    for row, (image_path, source) in zip(axes, picks):
        image = read_rgb(image_path)
        truth = read_mask(source, image_path, spec, image.shape[:2])
        for ax, shown, title in zip(row, (image, paint(truth), paint(segmenter.segment(image, bgr=False))),
                                    ("image", "ground truth", f"prediction ({Path(backend.path).name})")):
            ax.imshow(shown)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return save_figure(fig, path)
