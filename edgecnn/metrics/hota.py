"""HOTA (Luiten et al., IJCV 2020) for MOTChallenge 2D boxes, computed as TrackEval computes it.

Hand-written on numpy + scipy because TrackEval is no runtime dependency: its PyPI releases require
numpy >= 2.3 (our lock holds 1.26) and it is not packaged for the device. Tests hold the two to 1e-6.

Per frame, boxes pair by Hungarian matching on IoU weighted by how well the two whole tracks
align over the sequence; at each localisation threshold alpha in 0.05..0.95 a pair with IoU >=
alpha is a true positive. DetA = TP / (TP + FN + FP); AssA averages, over the true positives,
TPA / (TPA + FNA + FPA) of their object/hypothesis pair; HOTA = sqrt(DetA * AssA). The reported
scores are means over the 19 alphas; HOTA(0) and LocA(0) are the values at the lowest alpha,
as TrackEval names them. Ground truth with confidence 0 is dropped, as in `edgecnn.metrics.mot`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgecnn.metrics.mot import read_sequence_file, rows_by_frame, rows_xyxy
from edgecnn.runtime.mot import stack_rows
from edgecnn.runtime.boxes import iou_matrix

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's thresholds, its float rounding included
HOTA_METRICS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "HOTA(0)", "LocA(0)")
_EPS = np.finfo(float).eps


def _per_alpha() -> np.ndarray:
    return np.zeros(len(ALPHAS))


@dataclass(eq=False)
class HOTACounts:
    """Per-alpha sums of one or more sequences. Adding them is TrackEval's `combine_sequences`:
    TP/FN/FP summed, AssA/AssRe/AssPr and LocA averaged with the true positives as weights."""

    tp: np.ndarray = field(default_factory=_per_alpha)
    fn: np.ndarray = field(default_factory=_per_alpha)
    fp: np.ndarray = field(default_factory=_per_alpha)
    association: np.ndarray = field(default_factory=_per_alpha)  # sum over TPs of their pair's AssA
    association_recall: np.ndarray = field(default_factory=_per_alpha)
    association_precision: np.ndarray = field(default_factory=_per_alpha)
    localisation: np.ndarray = field(default_factory=_per_alpha)  # sum of IoU over TPs

    def __add__(self, other: "HOTACounts") -> "HOTACounts":
        return HOTACounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def curves(self) -> dict[str, np.ndarray]:
        """Each score at each alpha, with TrackEval's guards against empty denominators."""
        tp = self.tp
        det_a = tp / np.maximum(1, tp + self.fn + self.fp)
        ass_a = self.association / np.maximum(1, tp)
        return {
            "HOTA": np.sqrt(det_a * ass_a),
            "DetA": det_a,
            "AssA": ass_a,
            "DetRe": tp / np.maximum(1, tp + self.fn),
            "DetPr": tp / np.maximum(1, tp + self.fp),
            "AssRe": self.association_recall / np.maximum(1, tp),
            "AssPr": self.association_precision / np.maximum(1, tp),
            "LocA": np.maximum(1e-10, self.localisation) / np.maximum(1e-10, tp),  # 1 where no TP
        }

    def metrics(self) -> dict[str, float]:
        curves = self.curves()
        return {**{name: float(curve.mean()) for name, curve in curves.items()},
                "HOTA(0)": float(curves["HOTA"][0]), "LocA(0)": float(curves["LocA"][0])}


def score_sequence(gt: np.ndarray, hyp: np.ndarray) -> HOTACounts:
    """HOTA sums for one sequence from MOT rows (frame, id, left, top, width, height, ...)."""
    gt, hyp = np.asarray(gt, float).reshape(-1, 10), np.asarray(hyp, float).reshape(-1, 10)
    gt_ids, hyp_ids = np.unique(gt[:, 1]), np.unique(hyp[:, 1])
    gt_len = np.bincount(np.searchsorted(gt_ids, gt[:, 1]), minlength=len(gt_ids))  # boxes per track
    hyp_len = np.bincount(np.searchsorted(hyp_ids, hyp[:, 1]), minlength=len(hyp_ids))
    gt_frames, hyp_frames = rows_by_frame(gt), rows_by_frame(hyp)
    empty = stack_rows([])
    frames = []  # (object indices, hypothesis indices, IoU matrix) per frame
    for frame in sorted(set(gt_frames) | set(hyp_frames)):
        g, h = gt_frames.get(frame, empty), hyp_frames.get(frame, empty)
        frames.append((np.searchsorted(gt_ids, g[:, 1]), np.searchsorted(hyp_ids, h[:, 1]),
                       iou_matrix(rows_xyxy(g), rows_xyxy(h))))
    alignment = _track_alignment(frames, gt_len, hyp_len)
    matches = [_frame_matches(o, h, iou, alignment) for o, h, iou in frames]
    o_idx, h_idx, iou = (np.concatenate(parts) for parts in zip(*matches)) if matches else (np.empty(0, int),) * 3
    is_tp = iou[None, :] >= ALPHAS[:, None] - _EPS  # (alpha, match)
    tp = is_tp.sum(axis=1).astype(float)
    # Association of each (object, hypothesis) pair: TPA / (TPA + FNA + FPA) over the whole tracks.
    pairs, pair_of_match = np.unique(np.stack([o_idx, h_idx], axis=1).astype(int).reshape(-1, 2), axis=0,
                                     return_inverse=True)
    alpha, match = np.nonzero(is_tp)
    tpa = np.zeros((len(ALPHAS), len(pairs)))
    np.add.at(tpa, (alpha, pair_of_match.ravel()[match]), 1)
    pair_gt_len, pair_hyp_len = gt_len[pairs[:, 0]], hyp_len[pairs[:, 1]]
    return HOTACounts(
        tp=tp, fn=len(gt) - tp, fp=len(hyp) - tp,
        association=(tpa * tpa / np.maximum(1, pair_gt_len + pair_hyp_len - tpa)).sum(axis=1),
        association_recall=(tpa * tpa / np.maximum(1, pair_gt_len)).sum(axis=1),
        association_precision=(tpa * tpa / np.maximum(1, pair_hyp_len)).sum(axis=1),
        localisation=(is_tp * iou).sum(axis=1),
    )


def _track_alignment(frames: list, gt_len: np.ndarray, hyp_len: np.ndarray) -> np.ndarray:
    """(object, hypothesis) Jaccard alignment of whole tracks, from per-frame soft IoU shares."""
    shared = np.zeros((len(gt_len), len(hyp_len)))
    for o, h, iou in frames:
        denom = iou.sum(axis=0)[None, :] + iou.sum(axis=1)[:, None] - iou
        share = np.zeros_like(iou)
        np.divide(iou, denom, out=share, where=denom > _EPS)
        shared[o[:, None], h[None, :]] += share
    return shared / (gt_len[:, None] + hyp_len[None, :] - shared)


def _frame_matches(o: np.ndarray, h: np.ndarray, iou: np.ndarray, alignment: np.ndarray):
    """One frame's pairs maximizing alignment-weighted IoU: (object, hypothesis, IoU) arrays."""
    rows, cols = linear_sum_assignment(alignment[o[:, None], h[None, :]] * iou, maximize=True)
    return o[rows], h[cols], iou[rows, cols]


def score_files(gt: str | os.PathLike, res: str | os.PathLike) -> HOTACounts:
    """HOTA sums for one sequence from its gt.txt (confidence-0 rows dropped) and a results file."""
    return score_sequence(read_sequence_file(gt, True), read_sequence_file(res, False))
