"""A detector's operating point for the tracker, measured from its own scores on validation data.

A tracker's thresholds only mean something on one detector's score scale: MOT15's public Faster
R-CNN scores sit between 0.5 and 1, an int8 YOLO's spread from 0 up. So each artifact measures
its own, on the images it was validated on, and carries them in its metadata
(`meta["operating_point"]`) for `edgecnn track`:

- `track_conf`, detections that start tracks and match first: the confidence of largest F1
  over all classes pooled (IoU 0.5, class-aware matching), which is where the tracker, which
  sees one stream of boxes, trades false tracks against missed ones best;
- `low_conf`, the floor of the second (ByteTrack) association: the highest confidence that still
  keeps `RECALL_SHARE` of the recall the detector reaches at its lowest (0.01): these boxes only
  continue a track that overlaps them, so they may be far weaker than those that start one, but
  the near-zero tail is mostly noise that costs time. (A precision rule fails here: just below
  the F1-best confidence the detections are already less than half real, F1/2 at the optimum.)
- `n_init`, hits in a row that confirm a track: a real object, found in a frame with probability
  `recall` (at `track_conf`), is confirmed on its first run of detections with a chance of at
  least `CONFIRM_CHANCE`: n_init = 1 + floor(log(CONFIRM_CHANCE) / log(recall)), kept within
  [N_INIT_MIN, N_INIT_MAX] (2: a one-frame false alarm never surfaces; 5: the MOT15 default).
  `max_age` is left alone: it bridges occlusions, not misses, which at recall r run k frames in a
  row with chance (1 - r)^k.
The rule has no constant fitted to one video; benchmarks/tracking_defaults.py checks it
leave-one-sequence-out.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.metrics.detection import as_arrays, matched_by_class, precision_recall_at

RECALL_SHARE = 0.95
CONFIRM_CHANCE = 0.5
N_INIT_MIN, N_INIT_MAX = 2, 5
CONF_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


class ScoreCurve:
    """Every detection's score and whether it found an object (IoU >= 0.5, same class), over images."""

    def __init__(self):
        self._scores: list[np.ndarray] = []
        self._tp: list[np.ndarray] = []
        self.n_gt = 0
        self.images = 0

    def update(self, pred_xyxy, pred_scores, pred_classes, gt_xyxy, gt_classes) -> None:
        # every detection: unlike DetectionMetrics' max_det per class, the tail is what sets low_conf
        self.images += 1
        for _, scores, tp, n_gt in matched_by_class(*as_arrays(pred_xyxy, pred_scores, pred_classes, gt_xyxy,
                                                               gt_classes), thresholds=np.array([0.5])):
            self.n_gt += n_gt
            self._scores.append(scores)
            self._tp.append(tp[:, 0])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, true positive flags), by descending score."""
        if not self._scores:
            return np.zeros(0), np.zeros(0, bool)
        scores, tp = np.concatenate(self._scores), np.concatenate(self._tp)
        order = np.argsort(-scores, kind="mergesort")
        return scores[order], tp[order]

    def operating_point(self) -> dict:
        return operating_point(*self.arrays(), self.n_gt)


def operating_point(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> dict:
    """The tracker's thresholds (module docstring) from score-sorted detections and their TP flags."""
    precision, recall = precision_recall_at(scores, tp, max(n_gt, 1), CONF_GRID)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    track_conf = CONF_GRID[best]
    # the highest floor that still keeps RECALL_SHARE of all the detector finds at its lowest confidence
    low = int(np.flatnonzero(recall[: best + 1] >= RECALL_SHARE * recall[0] - 1e-12)[-1])
    r = float(recall[best])
    n_init = N_INIT_MAX if r >= 1 else N_INIT_MIN if r <= 0 else 1 + math.floor(math.log(CONFIRM_CHANCE) / math.log(r))
    return {"track_conf": float(track_conf), "low_conf": float(CONF_GRID[low]),
            "n_init": int(min(max(n_init, N_INIT_MIN), N_INIT_MAX)),
            "precision": round(float(precision[best]), 4), "recall": round(r, 4), "f1": round(float(f1[best]), 4),
            "recall_at_low_conf": round(float(recall[low]), 4), "n_gt": int(n_gt),
            "rule": f"track_conf: largest F1; low_conf: keeps {RECALL_SHARE} of the recall at {CONF_GRID[0]}; "
                    f"n_init: confirmed at recall with chance >= {CONFIRM_CHANCE}, in [{N_INIT_MIN}, {N_INIT_MAX}]"}

