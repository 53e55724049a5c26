"""Intersection over union between two sets of boxes, as a full matrix in one numpy pass."""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes `a` (N, 4) and `b` (M, 4); 0 where boxes do not overlap."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def buffered(boxes: np.ndarray, buffer: float) -> np.ndarray:
    """xyxy boxes grown by `buffer` times their width and height on every side."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    pad = np.tile(buffer * (boxes[:, 2:] - boxes[:, :2]), 2) * np.array([-1, -1, 1, 1])
    return boxes + pad


def iou_cost(track_boxes: np.ndarray, det_boxes: np.ndarray, buffer: float = 0.0) -> np.ndarray:
    """1 - IoU between predicted track boxes and detections (xyxy), both grown by `buffer` first.

    Buffered IoU (Yang et al., C-BIoU, 2023) keeps a fast or small target matchable when its
    predicted and detected boxes no longer overlap, as happens at low frame rates.
    """
    if buffer:
        track_boxes, det_boxes = buffered(track_boxes, buffer), buffered(det_boxes, buffer)
    return 1.0 - iou_matrix(track_boxes, det_boxes)
