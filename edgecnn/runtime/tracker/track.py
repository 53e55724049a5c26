"""One target's life cycle (tentative, confirmed after `n_init` hits, deleted after `max_age` misses),
and `Tracks`, the record of a frame's tracks that the tracker returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Sequence

import numpy as np


class TrackState(IntEnum):
    TENTATIVE = 1
    CONFIRMED = 2
    DELETED = 3


class Track:
    """A Kalman state plus the bookkeeping that decides when the track is trusted and when it ends.

    A tentative track that misses a frame is deleted (one-frame false alarms never surface); a
    confirmed one survives `max_age` missed frames so that it can be picked up after occlusion.
    """

    def __init__(self, track_id: int, mean: np.ndarray, cov: np.ndarray, n_init: int, max_age: int,
                 box: np.ndarray, score: float = 1.0, cls: int = -1, feature: np.ndarray | None = None,
                 aspect_weight: float = 1.0):
        self.track_id = track_id
        self.mean, self.cov = mean, cov
        self.box = box  # the last matched detection, xyxy
        self.aspect_weight = aspect_weight
        self.aspect = _aspect(box)  # width / height, averaged over the matched detections
        self.n_init, self.max_age = n_init, max_age
        self.score, self.cls = score, cls
        self.hits = 1
        self.age = 1
        self.time_since_update = 0
        self.state = TrackState.CONFIRMED if n_init <= 1 else TrackState.TENTATIVE
        self.features = [] if feature is None else [feature]

    @property
    def is_tentative(self) -> bool:
        return self.state == TrackState.TENTATIVE

    @property
    def is_confirmed(self) -> bool:
        return self.state == TrackState.CONFIRMED

    @property
    def is_deleted(self) -> bool:
        return self.state == TrackState.DELETED

    def mark_predicted(self, mean: np.ndarray, cov: np.ndarray) -> None:
        self.mean, self.cov = mean, cov
        self.age += 1
        self.time_since_update += 1

    def mark_hit(self, mean: np.ndarray, cov: np.ndarray, box: np.ndarray, score: float,
                 feature: np.ndarray | None = None) -> None:
        self.mean, self.cov = mean, cov
        self.box = box
        self.aspect += self.aspect_weight * (_aspect(box) - self.aspect)
        self.score = score
        self.hits += 1
        self.time_since_update = 0
        if feature is not None:
            self.features.append(feature)
        if self.is_tentative and self.hits >= self.n_init:
            self.state = TrackState.CONFIRMED

    @property
    def reported_box(self) -> np.ndarray:
        """The last matched detection, its width set by the averaged aspect ratio: a detector's
        width flickers with a walker's swinging limbs while the height holds (SORT's Kalman box
        smooths the ratio the same way)."""
        x1, y1, x2, y2 = self.box
        centre, half_width = (x1 + x2) / 2, (y2 - y1) * self.aspect / 2
        return np.array([centre - half_width, y1, centre + half_width, y2])

    def mark_missed(self) -> None:
        if self.is_tentative or self.time_since_update > self.max_age:
            self.state = TrackState.DELETED


def _aspect(box: np.ndarray) -> float:
    return float((box[2] - box[0]) / (box[3] - box[1]))


@dataclass(frozen=True)
class Tracks:
    """The tracks of one frame, in frame pixels: what `Tracker.update` returns and the sinks write."""

    boxes: np.ndarray  # (N, 4) float xyxy
    ids: np.ndarray  # (N,) int
    scores: np.ndarray  # (N,) float: the confidence of the detection each track matched
    classes: np.ndarray  # (N,) int, -1 without classes

    @classmethod
    def empty(cls) -> "Tracks":
        return cls(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))

    @classmethod
    def of(cls, tracks: Sequence[Track]) -> "Tracks":
        """The record of `tracks` as they are reported (`Track.reported_box`)."""
        if not tracks:
            return cls.empty()
        return cls(np.stack([t.reported_box for t in tracks]), np.array([t.track_id for t in tracks], np.int64),
                   np.array([t.score for t in tracks], np.float64), np.array([t.cls for t in tracks], np.int64))

    def __len__(self) -> int:
        return len(self.ids)
