"""MOTChallenge tracking metrics: CLEAR MOT (MOTA, MOTP), identity (IDF1, IDP, IDR) and MT/PT/ML.

The definitions and matching rules are py-motmetrics' (`compare_to_groundtruth` with IoU
distance, then its metrics), reproduced on numpy + scipy so the host scores tracks without
pandas; tests hold the two to 1e-6. Per frame, ground truth and hypotheses pair only at
IoU >= `iou`; a pair matched in an earlier frame is kept while it still overlaps, the rest are
assigned by Hungarian matching that first maximizes the number of pairs, then minimizes
1 - IoU. A match whose object was last matched to another hypothesis is an identity switch.
IDF1 comes from the best one-to-one assignment of whole object and hypothesis trajectories.
Ground truth rows with confidence 0 (ignored or non-pedestrian boxes) are dropped, as the
MOTChallenge devkit does; MOT15 files carry no usable class column, so none is read.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgecnn.runtime.mot import read_mot, stack_rows
from edgecnn.runtime.boxes import iou_matrix, tlwh_to_xyxy

METRICS = ("IDF1", "IDP", "IDR", "Recall", "Precision", "GT", "MT", "PT", "ML", "FP", "FN", "IDs", "FM",
           "MOTA", "MOTP")


@dataclass
class MOTCounts:
    """Additive event counts of one or more sequences; `metrics()` turns them into the scores."""

    objects: int = 0  # ground-truth boxes
    predictions: int = 0  # hypothesis boxes
    matches: int = 0  # matched boxes that kept their identity
    switches: int = 0  # matched boxes whose object changed hypothesis
    false_positives: int = 0
    misses: int = 0
    fragmentations: int = 0
    unique_objects: int = 0
    mostly_tracked: int = 0
    partially_tracked: int = 0
    mostly_lost: int = 0
    distance: float = 0.0  # sum of 1 - IoU over matches and switches
    idtp: int = 0

    def __add__(self, other: "MOTCounts") -> "MOTCounts":
        return MOTCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def metrics(self) -> dict[str, float | int]:
        detected = self.matches + self.switches
        idfp, idfn = self.predictions - self.idtp, self.objects - self.idtp
        return {
            "IDF1": _ratio(2 * self.idtp, self.objects + self.predictions),
            "IDP": _ratio(self.idtp, self.idtp + idfp),
            "IDR": _ratio(self.idtp, self.idtp + idfn),
            "Recall": _ratio(detected, self.objects),
            "Precision": _ratio(detected, detected + self.false_positives),
            "GT": self.unique_objects,
            "MT": self.mostly_tracked,
            "PT": self.partially_tracked,
            "ML": self.mostly_lost,
            "FP": self.false_positives,
            "FN": self.misses,
            "IDs": self.switches,
            "FM": self.fragmentations,
            "MOTA": 1.0 - _ratio(self.misses + self.switches + self.false_positives, self.objects),
            "MOTP": _ratio(self.distance, detected),
        }

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def rows_xyxy(rows: np.ndarray) -> np.ndarray:
    """xyxy boxes of MOTChallenge rows (frame, id, left, top, width, height, ...)."""
    return tlwh_to_xyxy(rows[:, 2:6])


def rows_by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    """{frame: its rows} of MOTChallenge rows, in file order within a frame."""
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    frames, starts = np.unique(rows[:, 0].astype(int), return_index=True)
    return dict(zip(frames.tolist(), np.split(rows, starts[1:])))


def _frame_assignment(dist: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most pairs first, least total distance second: invalid pairs cost more than any valid set."""
    if not valid.any():
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    scale = np.abs(dist[valid]).max() + 1
    rows, cols = linear_sum_assignment(np.where(valid, dist, 2 * min(dist.shape) * scale + 1))
    keep = valid[rows, cols]
    return rows[keep], cols[keep]


def score_sequence(gt: np.ndarray, hyp: np.ndarray, iou: float = 0.5) -> MOTCounts:
    """Counts for one sequence from MOT rows (frame, id, left, top, width, height, ...)."""
    max_dist = 1.0 - iou
    gt_frames, hyp_frames = rows_by_frame(np.asarray(gt, float)), rows_by_frame(np.asarray(hyp, float))
    last_match: dict[int, int] = {}
    counts = MOTCounts(objects=len(gt), predictions=len(hyp))
    tracked_rows, pair_rows = [], []  # (object, frame, tracked) and (object, hypothesis) with IoU >= iou
    empty = stack_rows([])
    for frame in sorted(set(gt_frames) | set(hyp_frames)):
        g, h = gt_frames.get(frame, empty), hyp_frames.get(frame, empty)
        oids, hids = g[:, 1].astype(int), h[:, 1].astype(int)
        dist = 1.0 - iou_matrix(rows_xyxy(g), rows_xyxy(h))
        valid = dist <= max_dist
        o_idx, h_idx = np.nonzero(valid)
        pair_rows.append(np.stack([oids[o_idx], hids[h_idx]], axis=1))
        matched_o = np.zeros(len(oids), bool)
        matched_h = np.zeros(len(hids), bool)
        hid_col = {hid: j for j, hid in enumerate(hids.tolist())}
        # 1. Keep last frame's pairs that still overlap enough.
        for i, oid in enumerate(oids.tolist()):
            j = hid_col.get(last_match.get(oid))
            if j is not None and not matched_h[j] and valid[i, j]:
                matched_o[i] = matched_h[j] = True
                counts.matches += 1
                counts.distance += dist[i, j]
        # 2. Assign the rest; an object that now pairs with a new hypothesis is a switch.
        free_o, free_h = np.flatnonzero(~matched_o), np.flatnonzero(~matched_h)
        rows, cols = _frame_assignment(dist[np.ix_(free_o, free_h)], valid[np.ix_(free_o, free_h)])
        for i, j in zip(free_o[rows], free_h[cols]):
            oid, hid = int(oids[i]), int(hids[j])
            if oid in last_match and last_match[oid] != hid:
                counts.switches += 1
            else:
                counts.matches += 1
            last_match[oid] = hid
            matched_o[i] = matched_h[j] = True
            counts.distance += dist[i, j]
        counts.misses += int((~matched_o).sum())
        counts.false_positives += int((~matched_h).sum())
        tracked_rows.append(np.stack([oids, np.full(len(oids), frame), matched_o], axis=1))
    _track_coverage(counts, np.concatenate(tracked_rows) if tracked_rows else np.empty((0, 3), int))
    counts.idtp = _identity_true_positives(np.concatenate(pair_rows) if pair_rows else np.empty((0, 2), int))
    return counts


def _track_coverage(counts: MOTCounts, rows: np.ndarray) -> None:
    """MT/PT/ML from the share of frames each object is matched; FM: tracked-to-missed transitions
    between an object's first and last matched frame."""
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    oids, tracked = rows[:, 0], rows[:, 2].astype(bool)
    uniq, start, length = np.unique(oids, return_index=True, return_counts=True)
    ratio = np.add.reduceat(tracked, start).astype(float) / length if len(uniq) else np.empty(0)
    counts.unique_objects = len(uniq)
    counts.mostly_tracked = int((ratio >= 0.8).sum())
    counts.partially_tracked = int(((ratio >= 0.2) & (ratio < 0.8)).sum())
    counts.mostly_lost = int((ratio < 0.2).sum())
    position = np.arange(len(rows))
    last_tracked = np.full(len(uniq), -1)
    np.maximum.at(last_tracked, np.searchsorted(uniq, oids[tracked]), position[tracked])
    same_object = np.r_[False, oids[1:] == oids[:-1]]
    lost = same_object & ~tracked & np.r_[False, tracked[:-1]]
    counts.fragmentations = int((lost & (position < last_tracked[np.searchsorted(uniq, oids)])).sum())


def _identity_true_positives(pairs: np.ndarray) -> int:
    """Frames shared by object/hypothesis trajectories under the best one-to-one trajectory map."""
    if not len(pairs):
        return 0
    oids, o_idx = np.unique(pairs[:, 0], return_inverse=True)
    hids, h_idx = np.unique(pairs[:, 1], return_inverse=True)
    shared = np.zeros((len(oids), len(hids)), dtype=np.int64)
    np.add.at(shared, (o_idx.ravel(), h_idx.ravel()), 1)
    rows, cols = linear_sum_assignment(shared, maximize=True)
    return int(shared[rows, cols].sum())


def read_sequence_file(path: str | os.PathLike, ground_truth: bool) -> np.ndarray:
    """MOT rows of a ground-truth (confidence-0 rows dropped) or results file, one box per id and frame."""
    rows = read_mot(path, min_confidence=1 if ground_truth else None)
    keys = rows[:, 0].astype(np.int64) * (1 << 32) + rows[:, 1].astype(np.int64)
    uniq, first, count = np.unique(keys, return_index=True, return_counts=True)
    if (count > 1).any():
        dup = rows[first[np.argmax(count > 1)]]
        raise ValueError(f"{path}: frame {int(dup[0])} has id {int(dup[1])} more than once")
    return rows


def score_files(gt: str | os.PathLike, res: str | os.PathLike, iou: float = 0.5) -> MOTCounts:
    """Counts for one sequence from its gt.txt and a tracker's results file."""
    return score_sequence(read_sequence_file(gt, True), read_sequence_file(res, False), iou)


def sequence_name(gt: str | os.PathLike) -> str:
    """`<SEQ>` for `<SEQ>/gt/gt.txt` or `<SEQ>/gt.txt`, else the file's stem."""
    gt = Path(gt).resolve()
    if gt.parent.name == "gt":
        return gt.parent.parent.name
    return gt.parent.name if gt.stem == "gt" else gt.stem
