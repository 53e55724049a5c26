"""Which detections' embeddings the tracker may use: appearance for association and the gallery."""

from __future__ import annotations

import numpy as np

from edgecnn.runtime.tracker.iou_matching import covered_fraction


class GalleryCandidates:
    """The embeddings of one frame's N detections and which of them are `clean`.

    A box that another covers by more than `max_crop_overlap` of its area is not clean: its crop
    shows two objects, and its embedding identifies neither, so it is matched by motion only and
    kept out of every track's gallery. Without embeddings (`features` None) nothing is clean.
    """

    def __init__(self, xyxy: np.ndarray, features: np.ndarray | None, max_crop_overlap: float = 1.0):
        self.features = features  # (N, D) or None
        self.clean = (np.zeros(len(xyxy), bool) if features is None  # (N,) bool
                      else covered_fraction(xyxy) <= max_crop_overlap)

    def feature(self, i: int) -> np.ndarray | None:
        """The embedding of detection `i` if it may enter a track's gallery."""
        return self.features[i] if self.clean[i] else None
