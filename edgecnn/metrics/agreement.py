"""Agreement of one model's outputs on two machines: which frames differ, how far scores and boxes move.

The same int8 model gives slightly different outputs on ARM and x86 (their int8 kernels round
differently), and a detection near the threshold can then appear on one and not the other.
Detections of a frame are paired one-to-one within a class by IoU (Hungarian); a frame *differs*
when, among the detections at or above the operating threshold `conf`, one has no partner of
the same class with IoU >= `same_iou` on the other machine. Score and box differences are
measured over pairs (IoU >= 0.5) where either score reaches `conf`, so the low-score tail that
only mAP sees does not dominate. Tracks compare the same way, with track IDs as the classes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgecnn.runtime.boxes import iou_matrix
from edgecnn.runtime.postprocess import Detections

SAME_IOU = 0.9  # boxes this close are the same detection
PAIR_IOU = 0.5  # boxes this close are the same object, for measuring score differences
SAME_PX = 1e-3  # boxes whose corners are all this close are equal


def pair(a: Detections, b: Detections, min_iou: float = PAIR_IOU) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ia, ib) of detections paired one-to-one: same class, IoU >= `min_iou`, most overlap first."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    xyxy_a, xyxy_b = np.asarray(a.xyxy, np.float64), np.asarray(b.xyxy, np.float64)
    ious = iou_matrix(xyxy_a, xyxy_b)
    # equal boxes are the same box even when they have no area (IoU 0/0): clipped at an image edge
    ious[np.abs(xyxy_a[:, None, :] - xyxy_b[None, :, :]).max(-1) <= SAME_PX] = 1.0
    ious[np.asarray(a.classes)[:, None] != np.asarray(b.classes)[None, :]] = 0.0
    rows, cols = linear_sum_assignment(-ious)
    keep = ious[rows, cols] >= min_iou
    return rows[keep], cols[keep]


def above(det: Detections, conf: float) -> Detections:
    keep = np.asarray(det.scores) >= conf
    return Detections(np.asarray(det.xyxy)[keep], np.asarray(det.scores)[keep], np.asarray(det.classes)[keep])


def frame_differs(a: Detections, b: Detections, conf: float, same_iou: float = SAME_IOU) -> bool:
    """Whether the detections at or above `conf` fail to pair one-to-one at IoU >= `same_iou`."""
    a, b = above(a, conf), above(b, conf)
    if len(a) != len(b):
        return True
    ia, _ = pair(a, b, same_iou)
    return len(ia) != len(a)


def agreement(frames: Sequence[tuple[Detections, Detections]], conf: float = 0.25,
              same_iou: float = SAME_IOU) -> dict:
    """Frames that differ, and the largest score and box-corner differences of paired detections."""
    differ, score_diff, box_shift = 0, 0.0, 0.0
    for a, b in frames:
        differ += frame_differs(a, b, conf, same_iou)
        ia, ib = pair(a, b)
        scores_a, scores_b = np.asarray(a.scores)[ia], np.asarray(b.scores)[ib]
        seen = np.maximum(scores_a, scores_b) >= conf
        if seen.any():
            score_diff = max(score_diff, float(np.abs(scores_a - scores_b)[seen].max()))
            shift = np.abs(np.asarray(a.xyxy)[ia] - np.asarray(b.xyxy)[ib])[seen]
            box_shift = max(box_shift, float(shift.max()))
    n = len(frames)
    return {"frames": n, "frames_differ": differ, "share_differ": differ / n if n else None,
            "max_score_diff": round(score_diff, 6), "max_box_shift_px": round(box_shift, 3),
            "conf": conf, "same_iou": same_iou}


def mot_frames(text: str) -> dict[int, Detections]:
    """MOTChallenge result lines (frame, id, left, top, width, height, score, ...) as Detections per
    frame, with the track IDs as classes so that `agreement` pairs tracks only with the same ID."""
    rows: dict[int, list[list[float]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) < 7:
            raise ValueError(f"MOT line {number}: expected at least 7 comma-separated fields, got {line!r}")
        rows.setdefault(int(float(fields[0])), []).append([float(f) for f in fields[1:7]])
    frames = {}
    for frame, values in rows.items():
        v = np.asarray(values, np.float64)
        xyxy = np.concatenate([v[:, 1:3], v[:, 1:3] + v[:, 3:5]], axis=1)
        frames[frame] = Detections(xyxy, v[:, 5], v[:, 0].astype(np.int64))
    return frames


def track_agreement(a_text: str, b_text: str, same_iou: float = SAME_IOU) -> dict:
    """`agreement` of two MOT result files frame by frame (a frame missing on one side has no tracks there)."""
    a, b = mot_frames(a_text), mot_frames(b_text)
    empty = Detections.empty()
    frames = [(a.get(f, empty), b.get(f, empty)) for f in sorted(set(a) | set(b))]
    return agreement(frames, conf=-1.0, same_iou=same_iou)  # every track, scored or not (-1)
