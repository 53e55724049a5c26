"""Box geometry in numpy: IoU, the box formats edgecnn meets, clipping to a frame.

Formats: xyxy (x1, y1, x2, y2: what edgecnn computes with), tlwh (left, top, width, height:
MOTChallenge files and OpenCV's NMS), cxcywh (centre, width, height: YOLO labels).
"""

from __future__ import annotations

import numpy as np


def tlwh_to_xyxy(tlwh: np.ndarray) -> np.ndarray:
    return np.concatenate([tlwh[:, 0:2], tlwh[:, 0:2] + tlwh[:, 2:4]], axis=1)


def xyxy_to_tlwh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate([xyxy[:, 0:2], xyxy[:, 2:4] - xyxy[:, 0:2]], axis=1)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """Boxes along the last axis (N, 4) or batched (..., N, 4)."""
    return np.concatenate([(xyxy[..., 0:2] + xyxy[..., 2:4]) / 2, xyxy[..., 2:4] - xyxy[..., 0:2]], axis=-1)


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """Boxes along the last axis (N, 4) or batched (..., N, 4)."""
    half = cxcywh[..., 2:4] / 2
    return np.concatenate([cxcywh[..., 0:2] - half, cxcywh[..., 0:2] + half], axis=-1)


def clip_boxes(xyxy: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """xyxy boxes clipped to a frame of (height, width), in place; returns them."""
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, frame_hw[1])
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, frame_hw[0])
    return xyxy


def intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    inter, area_a, area_b = intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)
