"""Intersection over union between two sets of boxes, as a full matrix in one numpy pass."""

from __future__ import annotations

import numpy as np


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, M) intersection areas of xyxy boxes `a` and `b`, and the areas of each."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.maximum(rb - lt, 0), axis=2)
    area_a = np.prod(np.maximum(a[:, 2:] - a[:, :2], 0), axis=1)
    area_b = np.prod(np.maximum(b[:, 2:] - b[:, :2], 0), axis=1)
    return inter, area_a, area_b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes `a` (N, 4) and `b` (M, 4); 0 where boxes do not overlap."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def covered_fraction(boxes: np.ndarray) -> np.ndarray:
    """(N,) the largest share of each box's area that any other of the N boxes covers."""
    inter, area, _ = _intersections(boxes, boxes)
    np.fill_diagonal(inter, 0.0)
    if not len(inter):
        return np.zeros(0)
    return np.divide(inter.max(axis=1), area, out=np.zeros(len(area)), where=area > 0)


def iou_cost(track_boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """1 - IoU: the association cost between predicted track boxes and detections (xyxy)."""
    return 1.0 - iou_matrix(track_boxes, det_boxes)
