"""Semantic segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy (numpy only).

Pixels whose ground truth is the ignore index count nowhere, as in CamVid's and Cityscapes'
benchmarks. A class that neither occurs in the ground truth nor is predicted has no IoU (NaN)
and is left out of the mean; one that occurs only in predictions scores 0.

`score_segmentation(predict, samples, names, ignore_index)` is the loop both the trainer-side
`edgecnn val` of a `.pt` and the device-side scoring of an exported model use: it only needs a
function from an RGB image to a class map.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Sequence

import numpy as np

DEFAULT_IGNORE_INDEX = 255


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = DEFAULT_IGNORE_INDEX) -> np.ndarray:
    """(C, C) int64 counts, rows the true class, columns the predicted one; ignored pixels left out.

    A true class outside 0..C-1 (other than `ignore_index`) or a predicted one outside it is a
    ValueError: it would silently fall off the matrix.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ in shape")
    target, pred = target.reshape(-1).astype(np.int64), pred.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = target != ignore_index
        target, pred = target[keep], pred[keep]
    for what, values in (("ground-truth", target), ("predicted", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = int(values.max() if values.max() >= num_classes else values.min())
            raise ValueError(f"{what} class {bad} is not one of 0..{num_classes - 1} (ignore index {ignore_index})")
    return np.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from truth and prediction."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


class SegmentationMetrics:
    """Accumulate class maps (prediction, ground truth); `compute()` gives mIoU and friends."""

    def __init__(self, num_classes: int, names: Sequence[str] | None = None,
                 ignore_index: int | None = DEFAULT_IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.names = list(names) if names is not None else [str(i) for i in range(num_classes)]
        self.confusion = np.zeros((num_classes, num_classes), np.int64)
        self.images = 0

    def update(self, pred, target) -> None:
        """`pred` and `target`: (H, W) or (N, H, W) integer class maps of the same shape."""
        self.confusion += confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.images += 1 if np.ndim(target) == 2 else len(target)

    def compute(self) -> dict:
        iou = iou_from_confusion(self.confusion)
        tp, support = np.diag(self.confusion), self.confusion.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        scored = ~np.isnan(iou)
        return {
            "mIoU": float(iou[scored].mean()) if scored.any() else 0.0,
            "pixel_acc": float(tp.sum() / max(self.confusion.sum(), 1)),
            "mean_acc": float(np.nanmean(recall)) if (support > 0).any() else 0.0,
            "iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(self.names, iou)},
            "images": self.images,
            "pixels": int(self.confusion.sum()),
            "confusion": self.confusion.tolist(),
        }


def score_segmentation(predict: Callable[[np.ndarray], np.ndarray], samples: Iterable[tuple[np.ndarray, np.ndarray]],
                       names: Sequence[str], ignore_index: int | None = DEFAULT_IGNORE_INDEX) -> dict:
    """Score `predict` (RGB uint8 (H, W, 3) -> class map (H, W)) on (image, mask) pairs.

    Returns `SegmentationMetrics.compute()` plus `latency_ms_p50`, the median time of one
    `predict` call (pre-processing, model and post-processing, whatever `predict` does).
    """
    metrics = SegmentationMetrics(len(names), names, ignore_index)
    times = []
    for image, mask in samples:
        tic = time.perf_counter()
        pred = predict(image)
        times.append((time.perf_counter() - tic) * 1e3)
        if pred.shape != mask.shape:
            raise ValueError(f"the prediction is {pred.shape[:2]} but the mask is {mask.shape[:2]}: "
                             "predict must return a class map at the image's size")
        metrics.update(pred, mask)
    return {**metrics.compute(), "latency_ms_p50": float(np.median(times)) if times else None}
