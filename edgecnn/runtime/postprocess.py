"""Detector post-processing in numpy: anchors, ltrb decoding, confidence filter, class-aware NMS.

The model outputs `boxes (B, A, 4)` as left/top/right/bottom distances in stride units and
`scores (B, A, C)` as probabilities (the model output contract: edgecnn/models/__init__.py); everything here works
in model-input pixels. NMS is OpenCV's `cv2.dnn.NMSBoxesBatched` (C++, per class).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edgecnn.runtime.boxes import xyxy_to_tlwh

MAX_NMS_CANDIDATES = 30000  # boxes entering NMS per image, best scores first


@dataclass
class Detections:
    """Detections of one image, the record from the detector to the tracker: `xyxy (N, 4)` float
    pixels (float32 from the detector, float64 from a MOT det.txt), `scores (N,)`, `classes (N,)` int
    (-1 without classes)."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def of(cls, xyxy: np.ndarray, scores: np.ndarray | None = None, classes: np.ndarray | None = None) -> Detections:
        """From arrays of boxes and, optionally, scores (default 1) and class ids (default -1)."""
        xyxy = np.asarray(xyxy).reshape(-1, 4)
        n = len(xyxy)
        scores = np.ones(n) if scores is None else np.asarray(scores).reshape(n)
        classes = np.full(n, -1) if classes is None else np.asarray(classes).astype(int).reshape(n)
        return cls(xyxy, scores, classes)

    def has_area(self) -> np.ndarray:
        """(N,) bool: the box is at least a pixel wide and high. Boxes clipped to nothing (they lay
        in the letterbox padding) have no extent to track and no aspect ratio for a Kalman state."""
        return (self.xyxy[:, 2:] - self.xyxy[:, :2] >= 1).all(axis=1)

    def select(self, keep: np.ndarray) -> Detections:
        """The detections where the (N,) mask or index array `keep` selects."""
        return Detections(self.xyxy[keep], self.scores[keep], self.classes[keep])


@lru_cache(maxsize=16)
def make_anchors(input_size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres `(A, 2)` in pixels and each anchor's stride `(A,)`, levels in order, row-major."""
    h, w = input_size
    centres, anchor_strides = [], []
    for s in strides:
        ny, nx = -(-h // s), -(-w // s)  # ceil: a conv with padding keeps the partial cell
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], axis=1))
        anchor_strides.append(np.full(ny * nx, s))
    return np.concatenate(centres).astype(np.float32), np.concatenate(anchor_strides).astype(np.float32)


def decode_boxes(ltrb: np.ndarray, centres: np.ndarray, anchor_strides: np.ndarray) -> np.ndarray:
    """Distances `(..., A, 4)` in stride units → xyxy boxes in pixels, same shape."""
    if ltrb.shape[-2] != len(centres):
        raise ValueError(
            f"the model gives {ltrb.shape[-2]} anchors but its input size and strides make {len(centres)}; "
            "the artifact's metadata (imgsz, strides) does not match its outputs"
        )
    dist = ltrb * anchor_strides[:, None]
    return np.concatenate([centres - dist[..., :2], centres + dist[..., 2:]], axis=-1)


def nms(xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by class-aware NMS, best score first."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    tlwh = xyxy_to_tlwh(xyxy).astype(np.float64)
    keep = cv2.dnn.NMSBoxesBatched(tlwh, scores.astype(np.float32), classes.astype(np.int32), 0.0, float(iou))
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    input_size: tuple[int, int],
    strides: tuple[int, ...],
    conf: float = 0.25,
    iou: float = 0.45,
    classes: tuple[int, ...] | None = None,
    max_det: int = 300,
) -> list[Detections]:
    """Model outputs of a batch → one `Detections` per image, in model-input pixels.

    Each anchor votes for its best class; anchors below `conf` are dropped, `classes` keeps only
    those class ids, then class-aware NMS and the `max_det` best.
    """
    centres, anchor_strides = make_anchors(tuple(input_size), tuple(strides))
    xyxy = decode_boxes(boxes, centres, anchor_strides)
    out = []
    for img_xyxy, img_scores in zip(xyxy, scores):
        cls = img_scores.argmax(axis=1)
        best = img_scores[np.arange(len(cls)), cls]
        mask = best >= conf
        if classes is not None:
            mask &= np.isin(cls, classes)
        idx = np.flatnonzero(mask)
        if len(idx) > MAX_NMS_CANDIDATES:
            idx = idx[np.argpartition(-best[idx], MAX_NMS_CANDIDATES)[:MAX_NMS_CANDIDATES]]
        keep = idx[nms(img_xyxy[idx], best[idx], cls[idx], iou)][:max_det]
        out.append(Detections(img_xyxy[keep].astype(np.float32), best[keep].astype(np.float32), cls[keep].astype(np.int64)))
    return out
