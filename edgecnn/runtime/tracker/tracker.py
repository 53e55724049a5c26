"""The multi-target tracker: DeepSORT association with ByteTrack's second chance for weak detections.

Each frame: predict every track, then associate in stages, most trusted first:
  1. appearance (only with embeddings): deep_sort's matching cascade on cosine distance,
     gated by the Kalman Mahalanobis bound, over confirmed tracks and the confident detections
     that no other box covers (a crop of two overlapping people identifies neither: matching
     and remembering it swapped identities in crossings, 35 switches against 20 on the
     synthetic videos), and only between a detection and a track that have no other candidate
     within `max_cosine_distance + appearance_margin`: look-alikes (the synthetic videos' twins
     differ in one detail) are left to motion, and a gated track with no gallery yet could be
     anyone, so it counts as a candidate (on unseen synthetic videos: 8 switches instead of 26,
     motion alone 11);
  2. IoU between the remaining confirmed tracks and the remaining confident detections;
  3. IoU between confirmed tracks still unmatched and the weak detections (ByteTrack), which
     keeps identities alive through partial occlusion without letting weak boxes start tracks;
  4. IoU between tentative tracks and the confident detections left.
Confident detections left over start tentative tracks. Without embeddings stage 1 is skipped
and the tracker runs on motion and IoU alone. Detections of another class never match.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edgecnn.config import Key, signature_keys
from edgecnn.runtime.tracker.camera_motion import warp_states
from edgecnn.runtime.postprocess import Detections
from edgecnn.runtime.tracker.gallery import GalleryCandidates
from edgecnn.runtime.tracker.iou_matching import iou_cost
from edgecnn.runtime.tracker.kalman_filter import KalmanFilter, xyah_to_xyxy, xyxy_to_xyah
from edgecnn.runtime.tracker.linear_assignment import INFTY_COST, gate_cost_matrix, matching_cascade, min_cost_matching
from edgecnn.runtime.tracker.nn_matching import NearestNeighborDistanceMetric
from edgecnn.runtime.tracker.track import Track, Tracks

_NO_PAIRS = np.empty((0, 2), dtype=int)


class Tracker:
    """Online multi-target tracker; `update` once per frame, in order, with that frame's detections."""

    # Defaults chosen on MOT15 public detections (benchmarks/mot15.py), for all sequences at once;
    # TRACKER_KEYS (below) takes them from here and says what each one means.
    def __init__(self, max_age: int = 30, n_init: int = 5, track_conf: float = 0.5, low_conf: float = 0.1,
                 output_conf: float = 0.0, max_iou_distance: float = 0.8, max_low_iou_distance: float = 0.5,
                 max_cosine_distance: float = 0.2, nn_budget: int = 100, max_crop_overlap: float = 0.1,
                 appearance_margin: float = 0.1, aspect_weight: float = 0.6):
        self.max_age, self.n_init = max_age, n_init
        self.track_conf, self.low_conf, self.output_conf = track_conf, low_conf, output_conf
        self.max_iou_distance, self.max_low_iou_distance = max_iou_distance, max_low_iou_distance
        self.max_crop_overlap, self.appearance_margin = max_crop_overlap, appearance_margin
        self.aspect_weight = aspect_weight
        self.kf = KalmanFilter()
        self.metric = NearestNeighborDistanceMetric(max_cosine_distance, nn_budget)
        self.tracks: list[Track] = []
        self.frame_count = 0
        self._next_id = 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Tracker":
        """Build from a mapping holding TRACKER_KEYS (other keys are ignored, missing ones default)."""
        return cls(**TRACKER_KEYS.resolve({k: v for k, v in cfg.items() if k in TRACKER_KEYS}, "tracker"))

    def update(self, detections: Detections, *, features: np.ndarray | None = None,
               warp: np.ndarray | None = None) -> Tracks:
        """Advance one frame with its `detections` (the detector's record; boxes without an area are
        left out here), optionally their (N, D) appearance embeddings and the camera's motion since the
        last frame (a 2x3 affine from `camera_motion.CameraMotion`), which moves every track before
        association. Returns the confirmed tracks matched in this frame (`Tracks`: boxes, ids, scores,
        classes). The box is the detection each track matched (its width from the track's averaged
        aspect ratio, `Track.reported_box`): the Kalman state smooths motion for association but lags
        the person's true extent."""
        if features is not None and len(features) != len(detections):
            raise ValueError(f"tracker: {len(features)} features for {len(detections)} boxes")
        keep = detections.has_area()
        dets = Detections(detections.xyxy[keep].astype(np.float64), detections.scores[keep].astype(np.float64),
                          detections.classes[keep].astype(int))
        features = None if features is None else np.asarray(features)[keep]
        gallery = GalleryCandidates(dets.xyxy, features, self.max_crop_overlap)
        self.frame_count += 1
        mean, cov = self._predict(warp)
        matches = self._associate(mean, cov, dets, gallery)
        self._apply(matches, mean, cov, dets, gallery)
        return Tracks.of([t for t in self.tracks
                          if t.time_since_update == 0 and t.is_confirmed and t.score >= self.output_conf])

    def _predict(self, warp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Move every track one frame ahead, in one batched Kalman step, then with the camera
        (BoT-SORT's order); returns the stacked states."""
        if not self.tracks:
            return np.empty((0, 8)), np.empty((0, 8, 8))
        mean, cov = self.kf.predict(np.stack([t.mean for t in self.tracks]), np.stack([t.cov for t in self.tracks]))
        if warp is not None:
            mean, cov = warp_states(mean, cov, warp)
        for track, m, c in zip(self.tracks, mean, cov):
            track.mark_predicted(m, c)
        return mean, cov

    def _associate(self, mean: np.ndarray, cov: np.ndarray, dets: Detections, gallery: GalleryCandidates) -> np.ndarray:
        """(K, 2) pairs of track index and detection index, from the stages in the module docstring;
        `mean` and `cov` are the tracks' predicted states."""
        tracks = self.tracks
        if not tracks or not len(dets):
            return _NO_PAIRS
        is_confirmed = np.array([t.is_confirmed for t in tracks])
        confirmed, tentative = np.flatnonzero(is_confirmed), np.flatnonzero(~is_confirmed)
        strong = np.flatnonzero(dets.scores >= self.track_conf)
        weak = np.flatnonzero((dets.scores < self.track_conf) & (dets.scores >= self.low_conf))
        other_class = np.array([t.cls for t in tracks])[:, None] != dets.classes[None, :]
        # One IoU matrix per frame; every stage takes its rows and columns from it.
        cost = np.where(other_class, INFTY_COST, iou_cost(xyah_to_xyxy(mean[:, :4]), dets.xyxy))
        pairs = []
        clean = gallery.clean[strong]  # all False without embeddings
        if len(confirmed) and clean.any():
            m, confirmed, left = self._appearance_match(confirmed, strong[clean], mean, cov, dets, gallery.features,
                                                        other_class)
            strong = np.concatenate([strong[~clean], left])
            pairs.append(m)
        m, confirmed, strong = _match(cost, confirmed, strong, self.max_iou_distance)
        pairs.append(m)
        m, confirmed, _ = _match(cost, confirmed, weak, self.max_low_iou_distance)
        pairs.append(m)
        m, _, strong = _match(cost, tentative, strong, self.max_iou_distance)
        pairs.append(m)
        return np.concatenate(pairs)

    def _appearance_match(self, rows: np.ndarray, cols: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                          dets: Detections, features: np.ndarray, other_class: np.ndarray):
        """deep_sort's stage: nearest-gallery cosine distance, Mahalanobis-gated, by the cascade,
        over the pairs of tracks `rows` and detections `cols` that appearance tells apart from
        every other candidate."""
        ids = [self.tracks[i].track_id for i in rows]
        cost = self.metric.distance(features[cols], ids)
        cost = gate_cost_matrix(cost, self.kf.gating_distance(mean[rows], cov[rows], xyxy_to_xyah(dets.xyxy[cols])))
        cost[other_class[np.ix_(rows, cols)]] = INFTY_COST
        unknown = np.array([i not in self.metric.samples for i in ids])
        cost[_ambiguous(cost, unknown, self.metric.matching_threshold + self.appearance_margin)] = INFTY_COST
        age = np.array([self.tracks[i].time_since_update for i in rows])
        m, left_rows, left_cols = matching_cascade(cost, self.metric.matching_threshold, age)
        return np.stack([rows[m[:, 0]], cols[m[:, 1]]], axis=1), rows[left_rows], cols[left_cols]

    def _apply(self, matches: np.ndarray, mean: np.ndarray, cov: np.ndarray, dets: Detections,
               gallery: GalleryCandidates) -> None:
        """Correct matched tracks, age the others, start tracks from confident leftovers."""
        tracks, boxes, scores = self.tracks, dets.xyxy, dets.scores
        if len(matches):
            rows, cols = matches[:, 0], matches[:, 1]
            new_mean, new_cov = self.kf.update(mean[rows], cov[rows], xyxy_to_xyah(boxes[cols]))
            for k, (row, det) in enumerate(zip(rows, cols)):
                tracks[row].mark_hit(new_mean[k], new_cov[k], boxes[det], float(scores[det]), gallery.feature(det))
        hit = np.zeros(len(tracks), bool)
        hit[matches[:, 0]] = True
        for i in np.flatnonzero(~hit):
            tracks[i].mark_missed()
        used = np.zeros(len(boxes), bool)
        used[matches[:, 1]] = True
        new = np.flatnonzero((scores >= self.track_conf) & ~used)
        # Everything in the first frame is new at once: waiting n_init frames there only loses boxes.
        n_init = 1 if self.frame_count == 1 else self.n_init
        if len(new):
            mean, cov = self.kf.initiate(xyxy_to_xyah(boxes[new]))
            for k, det in enumerate(new):
                tracks.append(Track(self._next_id, mean[k], cov[k], n_init, self.max_age, boxes[det],
                                    float(scores[det]), int(dets.classes[det]), gallery.feature(det), self.aspect_weight))
                self._next_id += 1
        self.tracks = [t for t in tracks if not t.is_deleted]
        if gallery.features is not None:
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


def _ambiguous(cost: np.ndarray, unknown: np.ndarray, limit: float) -> np.ndarray:
    """Mask of the (track, detection) pairs in which either side has two candidates: within
    `limit` or, for `unknown` tracks (no gallery), anywhere inside the gate."""
    candidate = (cost <= limit) | (unknown[:, None] & (cost < INFTY_COST))
    return (candidate.sum(1) > 1)[:, None] | (candidate.sum(0) > 1)[None, :]


def _match(cost: np.ndarray, rows: np.ndarray, dets: np.ndarray, limit: float):
    """Min-cost matching of `rows` x `dets` of the frame's cost matrix; returns pairs and leftovers."""
    if not len(rows) or not len(dets):
        return _NO_PAIRS, rows, dets
    m, left_rows, left_dets = min_cost_matching(cost[np.ix_(rows, dets)], limit)
    return np.stack([rows[m[:, 0]], dets[m[:, 1]]], axis=1), rows[left_rows], dets[left_dets]


# The tracker's keys for commands and config files; defaults: Tracker.__init__.
TRACKER_KEYS = signature_keys(
    Tracker.__init__,
    Key("max_age", ..., "frames a confirmed track survives without a detection", min=0),
    Key("n_init", ..., "detections in a row that confirm a new track (fewer: quicker, more false tracks)",
        min=1),
    Key("track_conf", ..., "detections at least this confident start tracks and match first", min=0.0, max=1.0),
    Key("low_conf", ..., "weaker detections down to this only continue existing tracks", min=0.0, max=1.0),
    # 0.5-0.7 is a plateau on MOT15; left out one sequence at a time, the weight chosen on the
    # other four improved or tied every held-out sequence (all five: MOTA 56.3 -> 57.1, IDF1 71.6 -> 72.0).
    Key("aspect_weight", ..., "weight of the newest detection in the width-to-height ratio of the reported box "
        "(1: the detection's own width; lower steadies a walker's flickering width)", min=0.05, max=1.0),
    Key("output_conf", ..., "report a track in a frame only if its detection is at least this confident "
        "(weaker ones still keep it alive); set it where your detector's boxes turn mostly false",
        min=0.0, max=1.0),
    Key("max_iou_distance", ..., "largest 1 - IoU accepted when matching by overlap", min=0.0, max=1.0),
    Key("max_low_iou_distance", ..., "largest 1 - IoU accepted for weak detections", min=0.0, max=1.0),
    Key("max_cosine_distance", ..., "largest appearance distance accepted (with a ReID model)", min=0.0, max=2.0),
    Key("nn_budget", ..., "embeddings kept per track for appearance matching", min=1),
    Key("max_crop_overlap", ..., "a detection whose box another covers by more than this share is matched by "
        "motion only and not added to the gallery: its crop shows two objects", min=0.0, max=1.0),
    Key("appearance_margin", ..., "appearance matches a detection and a track only if neither has a second "
        "candidate within max_cosine_distance + this; look-alikes are left to motion", min=0.0, max=2.0),
)
