"""One frame's detections as the tracker sees them: deep_sort's `Detection`, one array per field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecnn.runtime.tracker.iou_matching import covered_fraction


@dataclass(frozen=True)
class Detections:
    """N detections; the association stages index these arrays, never a per-box object."""

    boxes: np.ndarray  # (N, 4) float64 xyxy, each with an area
    scores: np.ndarray  # (N,) float64
    classes: np.ndarray  # (N,) int, -1 without classes
    features: np.ndarray | None  # (N, D) appearance embeddings, None to track on motion alone
    clean: np.ndarray  # (N,) bool: the crop shows one object, so its embedding may match and be remembered

    @classmethod
    def from_arrays(cls, boxes: np.ndarray, scores: np.ndarray | None = None, features: np.ndarray | None = None,
                    classes: np.ndarray | None = None, max_crop_overlap: float = 1.0) -> "Detections":
        """Detections from the detector's arrays (scores default to 1, classes to -1), without the
        boxes that have no area: they have no aspect ratio for the Kalman state. A box that another
        covers by more than `max_crop_overlap` of its area is not `clean`: its crop shows two objects,
        and its embedding identifies neither."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        scores = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n)
        classes = np.full(n, -1) if classes is None else np.asarray(classes).astype(int).reshape(n)
        if features is not None and len(features) != n:
            raise ValueError(f"tracker: {len(features)} features for {n} boxes")
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if not valid.all():
            boxes, scores, classes = boxes[valid], scores[valid], classes[valid]
            features = None if features is None else np.asarray(features)[valid]
        clean = np.zeros(len(boxes), bool) if features is None else covered_fraction(boxes) <= max_crop_overlap
        return cls(boxes, scores, classes, features, clean)

    def __len__(self) -> int:
        return len(self.boxes)

    def feature(self, i: int) -> np.ndarray | None:
        """The embedding of detection `i` if it may enter a track's gallery."""
        return self.features[i] if self.clean[i] else None
