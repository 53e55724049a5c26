"""The multi-target tracker: DeepSORT association with ByteTrack's second chance for weak detections.

Each frame: predict every track, then associate in stages, most trusted first:
  1. appearance (only with embeddings): deep_sort's matching cascade on cosine distance,
     gated by the Kalman Mahalanobis bound, over confirmed tracks and confident detections;
  2. IoU between the remaining confirmed tracks and the remaining confident detections;
  3. IoU between confirmed tracks still unmatched and the weak detections (ByteTrack), which
     keeps identities alive through partial occlusion without letting weak boxes start tracks;
  4. IoU between tentative tracks and the confident detections left.
Confident detections left over start tentative tracks. Without embeddings stage 1 is skipped
and the tracker runs on motion and IoU alone.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgecnn.config import Key, Schema
from edgecnn.runtime.tracker import linear_assignment
from edgecnn.runtime.tracker.iou_matching import iou_cost
from edgecnn.runtime.tracker.kalman_filter import KalmanFilter, xyah_to_xyxy, xyxy_to_xyah
from edgecnn.runtime.tracker.linear_assignment import INFTY_COST, gate_cost_matrix, matching_cascade, min_cost_matching
from edgecnn.runtime.tracker.nn_matching import NearestNeighborDistanceMetric
from edgecnn.runtime.tracker.track import Track

TRACKER_KEYS = Schema(
    Key("max_age", 30, "frames a confirmed track survives without a detection", type=int, min=0),
    Key("n_init", 3, "consecutive detections that confirm a new track", type=int, min=1),
    Key("track_conf", 0.5, "detections at least this confident start tracks and match first", min=0.0, max=1.0),
    Key("low_conf", 0.1, "weaker detections down to this only continue existing tracks", min=0.0, max=1.0),
    Key("max_iou_distance", 0.7, "largest 1 - IoU accepted when matching by overlap", min=0.0, max=1.0),
    Key("max_low_iou_distance", 0.5, "largest 1 - IoU accepted for weak detections", min=0.0, max=1.0),
    Key("iou_buffer", 0.0, "grow boxes by this share of their size before IoU matching (fast motion)", min=0.0, max=2.0),
    Key("max_cosine_distance", 0.2, "largest appearance distance accepted (with a ReID model)", min=0.0, max=2.0),
    Key("nn_budget", 100, "embeddings kept per track for appearance matching; none keeps all", type=int, min=1),
    Key("gating", True, "reject matches outside the Kalman filter's 95% Mahalanobis bound", type=bool),
)

OUTPUT_COLUMNS = ("x1", "y1", "x2", "y2", "track_id", "score", "class")


class Tracker:
    """Online multi-target tracker; `update` once per frame, in order, with that frame's detections."""

    def __init__(self, max_age: int = 30, n_init: int = 3, track_conf: float = 0.5, low_conf: float = 0.1,
                 max_iou_distance: float = 0.7, max_low_iou_distance: float = 0.5,
                 iou_buffer: float = 0.0, max_cosine_distance: float = 0.2, nn_budget: int | None = 100,
                 gating: bool = True):
        self.max_age, self.n_init = max_age, n_init
        self.track_conf, self.low_conf = track_conf, low_conf
        self.max_iou_distance, self.max_low_iou_distance = max_iou_distance, max_low_iou_distance
        self.iou_buffer, self.gating = iou_buffer, gating
        self.kf = KalmanFilter()
        self.metric = NearestNeighborDistanceMetric(max_cosine_distance, nn_budget)
        self.tracks: list[Track] = []
        self.frame_count = 0
        self._next_id = 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Tracker":
        """Build from a mapping of TRACKER_KEYS (other keys are ignored, missing ones default)."""
        return cls(**TRACKER_KEYS.resolve({k: v for k, v in cfg.items() if k in TRACKER_KEYS}, "tracker"))

    def update(self, boxes: np.ndarray, scores: np.ndarray | None = None, features: np.ndarray | None = None,
               classes: np.ndarray | None = None) -> np.ndarray:
        """Advance one frame. `boxes` are (N, 4) xyxy; returns the confirmed tracks seen in this frame
        as (K, 7) rows of OUTPUT_COLUMNS (box from the corrected Kalman state)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        scores = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n)
        classes = np.full(n, -1) if classes is None else np.asarray(classes).astype(int).reshape(n)
        if features is not None and len(features) != n:
            raise ValueError(f"tracker: {len(features)} features for {n} boxes")
        self.frame_count += 1
        self._predict()
        matches = self._associate(boxes, scores, features, classes)
        self._apply(matches, boxes, scores, features, classes)
        return self._output()

    def _predict(self) -> None:
        if not self.tracks:
            return
        mean, cov = self.kf.predict(*self._states(self.tracks))
        for track, m, c in zip(self.tracks, mean, cov):
            track.mark_predicted(m, c)

    @staticmethod
    def _states(tracks: list[Track]) -> tuple[np.ndarray, np.ndarray]:
        return np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks])

    def _associate(self, boxes, scores, features, classes) -> np.ndarray:
        """(K, 2) pairs of track index and detection index, from the stages in the module docstring."""
        tracks = self.tracks
        confirmed = np.array([i for i, t in enumerate(tracks) if t.is_confirmed], dtype=int)
        tentative = np.array([i for i, t in enumerate(tracks) if t.is_tentative], dtype=int)
        strong = np.flatnonzero(scores >= self.track_conf)
        weak = np.flatnonzero((scores < self.track_conf) & (scores >= self.low_conf))
        if not tracks or not len(boxes):
            return np.empty((0, 2), dtype=int)
        pairs = []
        if features is not None and len(confirmed) and len(strong):
            cost = self.metric.distance(features[strong], [tracks[i].track_id for i in confirmed])
            cost = self._gate(cost, confirmed, strong, boxes, classes)
            age = np.array([tracks[i].time_since_update for i in confirmed])
            m, rows, cols = matching_cascade(cost, self.metric.matching_threshold, age)
            pairs.append(np.stack([confirmed[m[:, 0]], strong[m[:, 1]]], axis=1))
            confirmed, strong = confirmed[rows], strong[cols]
        m, confirmed, strong = self._iou_match(confirmed, strong, boxes, classes, self.max_iou_distance)
        pairs.append(m)
        m, confirmed, _ = self._iou_match(confirmed, weak, boxes, classes, self.max_low_iou_distance)
        pairs.append(m)
        m, _, strong = self._iou_match(tentative, strong, boxes, classes, self.max_iou_distance)
        pairs.append(m)
        return np.concatenate(pairs)

    def _iou_match(self, rows, dets, boxes, classes, limit):
        if not len(rows) or not len(dets):
            return np.empty((0, 2), dtype=int), rows, dets
        predicted = xyah_to_xyxy(np.stack([self.tracks[i].mean[:4] for i in rows]))
        cost = self._gate(iou_cost(predicted, boxes[dets], self.iou_buffer), rows, dets, boxes, classes)
        m, left_rows, left_dets = min_cost_matching(cost, limit)
        return np.stack([rows[m[:, 0]], dets[m[:, 1]]], axis=1), rows[left_rows], dets[left_dets]

    def _gate(self, cost, rows, dets, boxes, classes) -> np.ndarray:
        """Infeasible pairs: different classes, or (with gating) outside the Mahalanobis bound."""
        track_cls = np.array([self.tracks[i].cls for i in rows])
        cost = np.where(track_cls[:, None] != classes[dets][None, :], INFTY_COST, cost)
        if self.gating:
            mean, cov = self._states([self.tracks[i] for i in rows])
            cost = gate_cost_matrix(cost, self.kf.gating_distance(mean, cov, xyxy_to_xyah(boxes[dets])))
        return cost

    def _apply(self, matches, boxes, scores, features, classes) -> None:
        tracks = self.tracks
        if len(matches):
            matched = [tracks[i] for i in matches[:, 0]]
            mean, cov = self.kf.update(*self._states(matched), xyxy_to_xyah(boxes[matches[:, 1]]))
            for k, (track, det) in enumerate(zip(matched, matches[:, 1])):
                track.mark_hit(mean[k], cov[k], float(scores[det]), None if features is None else features[det])
        hit = set(matches[:, 0].tolist())
        for i, track in enumerate(tracks):
            if i not in hit:
                track.mark_missed()
        new = np.setdiff1d(np.flatnonzero(scores >= self.track_conf), matches[:, 1])
        # Everything in the first frame is new at once: waiting n_init frames there only loses boxes.
        n_init = 1 if self.frame_count == 1 else self.n_init
        if len(new):
            mean, cov = self.kf.initiate(xyxy_to_xyah(boxes[new]))
            for k, det in enumerate(new):
                feature = None if features is None else features[det]
                tracks.append(Track(self._next_id, mean[k], cov[k], n_init, self.max_age,
                                    float(scores[det]), int(classes[det]), feature))
                self._next_id += 1
        self.tracks = [t for t in tracks if not t.is_deleted]
        if features is not None:
            self._fit_gallery()

    def _fit_gallery(self) -> None:
        confirmed = [t for t in self.tracks if t.is_confirmed]
        feats, targets = [], []
        for t in confirmed:
            feats += t.features
            targets += [t.track_id] * len(t.features)
            t.features = []
        features = np.stack(feats) if feats else np.empty((0, 0), np.float32)
        self.metric.partial_fit(features, np.asarray(targets, dtype=int), [t.track_id for t in confirmed])

    def _output(self) -> np.ndarray:
        live = [t for t in self.tracks if t.is_confirmed and t.time_since_update == 0]
        if not live:
            return np.empty((0, len(OUTPUT_COLUMNS)))
        boxes = xyah_to_xyxy(np.stack([t.mean[:4] for t in live]))
        meta = np.array([[t.track_id, t.score, t.cls] for t in live], dtype=np.float64)
        return np.concatenate([boxes, meta], axis=1)
