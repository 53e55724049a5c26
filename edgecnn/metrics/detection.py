"""Detection metrics with the COCO definition: mAP@0.5:0.95, mAP@0.5, precision, recall, per class.

numpy only, so `edgecnn val` can score any backend. Matching and 101-point interpolation follow
pycocotools' COCOeval (area "all", maxDets=100 per image and class, no crowd regions); the tests
check it against pycocotools to 1e-3. Written here because pycocotools needs a COCO json round
trip per evaluation and gives no per-class precision/recall at an operating point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgecnn.runtime.boxes import iou_matrix

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def match_detections(ious: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Greedy COCO matching of score-sorted detections to ground truth, per IoU threshold.

    `ious` is (detections sorted by score, ground truths). Each detection takes the unmatched
    ground truth with the highest IoU at or above the threshold. Returns (D, T) true positives.
    """
    n_det, n_gt = ious.shape
    tp = np.zeros((n_det, len(thresholds)), dtype=bool)
    if n_det == 0 or n_gt == 0:
        return tp
    for t, thr in enumerate(thresholds):
        taken = np.zeros(n_gt, dtype=bool)
        for d in range(n_det):
            candidates = np.where(taken, -1.0, ious[d])
            # pycocotools keeps the last ground truth among equal IoUs
            best = n_gt - 1 - int(np.argmax(candidates[::-1]))
            if candidates[best] >= min(thr, 1 - 1e-10):
                taken[best] = True
                tp[d, t] = True
    return tp


def interpolated_precision(tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, float]:
    """101-point interpolated precision (COCO) and final recall of score-sorted TP flags."""
    if n_gt == 0:
        return np.full(len(RECALL_THRESHOLDS), np.nan), np.nan
    if len(tp) == 0:
        return np.zeros(len(RECALL_THRESHOLDS)), 0.0
    tps = np.cumsum(tp, dtype=np.float64)
    fps = np.cumsum(~tp, dtype=np.float64)
    recall = tps / n_gt
    precision = tps / (tps + fps + np.spacing(1))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    q = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return q, float(recall[-1])


def as_arrays(pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes) -> tuple[np.ndarray, ...]:
    """One image's predictions and ground truth as float64 boxes and scores and int64 classes."""
    return (np.asarray(pred_xyxy, dtype=np.float64).reshape(-1, 4),
            np.asarray(pred_scores, dtype=np.float64).reshape(-1),
            np.asarray(pred_classes).reshape(-1).astype(np.int64),
            np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4),
            np.asarray(gt_classes).reshape(-1).astype(np.int64))


def matched_by_class(pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes,
                     thresholds: np.ndarray = IOU_THRESHOLDS, max_det: int | None = None):
    """Per class of one image (`as_arrays`): (class, its `max_det` best scores in descending order,
    their (D, T) true positives from `match_detections`, its number of ground truths)."""
    for c in np.union1d(pred_classes, gt_classes):
        det = np.flatnonzero(pred_classes == c)
        det = det[np.argsort(-pred_scores[det], kind="mergesort")][:max_det]
        gt = gt_xyxy[gt_classes == c]
        yield int(c), pred_scores[det], match_detections(iou_matrix(pred_xyxy[det], gt), thresholds), len(gt)


class DetectionMetrics:
    """Accumulate per-image predictions and ground truth; `compute()` gives the COCO metrics.

    `update` takes numpy arrays in the same pixel frame: predicted xyxy boxes, scores and
    classes, and ground-truth xyxy boxes and classes.
    """

    def __init__(self, num_classes: int, names: Sequence[str] | None = None, max_det: int = 100):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.names = list(names) if names is not None else [str(i) for i in range(num_classes)]
        if len(self.names) != num_classes:
            raise ValueError(f"{len(self.names)} names for {num_classes} classes")
        self.max_det = max_det
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._tp: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._n_gt = np.zeros(num_classes, dtype=np.int64)
        self.images = 0

    def update(self, pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes) -> None:
        pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes = as_arrays(
            pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes)
        if not (len(pred_xyxy) == len(pred_scores) == len(pred_classes)):
            raise ValueError(
                f"predictions disagree in length: {len(pred_xyxy)} boxes, {len(pred_scores)} scores, "
                f"{len(pred_classes)} classes"
            )
        if len(gt_xyxy) != len(gt_classes):
            raise ValueError(f"ground truth disagrees in length: {len(gt_xyxy)} boxes, {len(gt_classes)} classes")
        for name, cls in (("predicted", pred_classes), ("ground-truth", gt_classes)):
            if len(cls) and (cls.min() < 0 or cls.max() >= self.num_classes):
                raise ValueError(f"{name} class {int(cls.max())} out of range for {self.num_classes} classes")
        self.images += 1
        for c, scores, tp, n_gt in matched_by_class(pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes,
                                                    max_det=self.max_det):
            self._n_gt[c] += n_gt
            self._scores[c].append(scores)
            self._tp[c].append(tp)

    def _class_arrays(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if not self._scores[c]:
            return np.zeros(0), np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
        scores = np.concatenate(self._scores[c])
        order = np.argsort(-scores, kind="mergesort")
        return scores[order], np.concatenate(self._tp[c])[order]

    def compute(self) -> dict:
        """mAP50_95, mAP50, precision, recall (at the confidence of best mean F1 at IoU 0.5),
        per_class (AP50_95, AP50, precision, recall, n_gt) and curves (PR and F1 per class)."""
        nc, n_thr = self.num_classes, len(IOU_THRESHOLDS)
        ap = np.full((nc, n_thr), np.nan)
        pr_curves = np.full((nc, len(RECALL_THRESHOLDS)), np.nan)
        conf_grid = np.linspace(0, 1, 1001)
        p_at_conf = np.zeros((nc, len(conf_grid)))
        r_at_conf = np.zeros((nc, len(conf_grid)))
        for c in range(nc):
            scores, tp = self._class_arrays(c)
            n_gt = int(self._n_gt[c])
            for t in range(n_thr):
                q, _ = interpolated_precision(tp[:, t], n_gt)
                ap[c, t] = q.mean() if n_gt else np.nan
                if t == 0:
                    pr_curves[c] = q
            if n_gt and len(scores):
                p_at_conf[c], r_at_conf[c] = precision_recall_at(scores, tp[:, 0], n_gt, conf_grid)
        has_gt = self._n_gt > 0
        f1 = 2 * p_at_conf * r_at_conf / np.maximum(p_at_conf + r_at_conf, 1e-16)
        best = int(np.argmax(f1[has_gt].mean(axis=0))) if has_gt.any() else 0
        per_class = {
            self.names[c]: {
                "AP50_95": _float(ap[c].mean()),
                "AP50": _float(ap[c, 0]),
                "precision": float(p_at_conf[c, best]),
                "recall": float(r_at_conf[c, best]),
                "n_gt": int(self._n_gt[c]),
            }
            for c in range(nc)
        }
        return {
            "mAP50_95": _float(np.nanmean(ap)) if has_gt.any() else 0.0,
            "mAP50": _float(np.nanmean(ap[:, 0])) if has_gt.any() else 0.0,
            "precision": float(p_at_conf[has_gt, best].mean()) if has_gt.any() else 0.0,
            "recall": float(r_at_conf[has_gt, best].mean()) if has_gt.any() else 0.0,
            "conf_best_f1": float(conf_grid[best]),
            "images": self.images,
            "per_class": per_class,
            "curves": {
                "recall": RECALL_THRESHOLDS.tolist(),
                "precision": {self.names[c]: pr_curves[c].tolist() for c in range(nc) if has_gt[c]},
                "confidence": conf_grid.tolist(),
                "f1": {self.names[c]: f1[c].tolist() for c in range(nc) if has_gt[c]},
            },
        }


def precision_recall_at(scores: np.ndarray, tp: np.ndarray, n_gt: int, conf: np.ndarray):
    """Precision (1 where nothing is kept) and recall of score-sorted detections with score >= each
    confidence in `conf`."""
    tps = np.concatenate([[0.0], np.cumsum(tp, dtype=np.float64)])
    # scores are descending: the count of detections kept at confidence c
    kept = np.searchsorted(-scores, -np.asarray(conf), side="right")
    precision = np.where(kept > 0, tps[kept] / np.maximum(kept, 1), 1.0)
    return precision, tps[kept] / n_gt


def _float(x) -> float:
    return float(x) if np.isfinite(x) else 0.0
