"""IoU association between tracks and detections, and how much of a detection other boxes cover."""

from __future__ import annotations

import numpy as np

from edgecnn.runtime.boxes import intersections, iou_matrix


def covered_fraction(boxes: np.ndarray) -> np.ndarray:
    """(N,) the largest share of each box's area that any other of the N boxes covers."""
    inter, area, _ = intersections(boxes, boxes)
    np.fill_diagonal(inter, 0.0)
    if not len(inter):
        return np.zeros(0)
    return np.divide(inter.max(axis=1), area, out=np.zeros(len(area)), where=area > 0)


def iou_cost(track_boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """1 - IoU: the association cost between predicted track boxes and detections (xyxy)."""
    return 1.0 - iou_matrix(track_boxes, det_boxes)
