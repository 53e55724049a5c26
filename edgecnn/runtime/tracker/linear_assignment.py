"""Assignment of detections to tracks: gated min-cost matching and deep_sort's matching cascade."""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgecnn.runtime.tracker.kalman_filter import CHI2INV95

INFTY_COST = 1e5

# typing.Tuple: this alias is evaluated at import, and JetPack's Python 3.8 has no tuple[...].
Matches = Tuple[np.ndarray, np.ndarray, np.ndarray]  # (K, 2) row/col pairs, unmatched rows, unmatched cols


def min_cost_matching(cost: np.ndarray, max_distance: float) -> Matches:
    """Hungarian matching on `cost` (rows: tracks, cols: detections); pairs above max_distance are dropped."""
    if cost.size == 0:
        return np.empty((0, 2), dtype=int), np.arange(cost.shape[0]), np.arange(cost.shape[1])
    # Costs above the threshold are flattened to one value just over it, so a pair that cannot be
    # kept never pulls the solver away from pairs that can.
    clipped = np.where(cost > max_distance, max_distance + 1e-5, cost)
    r, c = linear_sum_assignment(clipped)
    keep = cost[r, c] <= max_distance
    return np.stack([r[keep], c[keep]], axis=1), _unmatched(cost.shape[0], r[keep]), _unmatched(cost.shape[1], c[keep])


def _unmatched(n: int, matched: np.ndarray) -> np.ndarray:
    free = np.ones(n, bool)
    free[matched] = False
    return np.flatnonzero(free)


def matching_cascade(cost: np.ndarray, max_distance: float, time_since_update: np.ndarray) -> Matches:
    """deep_sort's cascade: tracks seen most recently pick their detections first.

    `cost` is the full (tracks, detections) matrix, computed once; each level solves the rows
    of one `time_since_update` value against the detections still free.
    """
    free = np.arange(cost.shape[1])
    matched = []
    for age in np.unique(time_since_update):
        if not len(free):
            break
        rows = np.flatnonzero(time_since_update == age)
        pairs, _, unmatched_cols = min_cost_matching(cost[np.ix_(rows, free)], max_distance)
        matched.append(np.stack([rows[pairs[:, 0]], free[pairs[:, 1]]], axis=1))
        free = free[unmatched_cols]
    matches = np.concatenate(matched) if matched else np.empty((0, 2), dtype=int)
    return matches, _unmatched(cost.shape[0], matches[:, 0]), free


def gate_cost_matrix(
    cost: np.ndarray, gating_distance: np.ndarray, only_position: bool = False, gated_cost: float = INFTY_COST
) -> np.ndarray:
    """Make pairs whose squared Mahalanobis distance exceeds the chi-square 0.95 bound infeasible."""
    threshold = CHI2INV95[2 if only_position else 4]
    return np.where(gating_distance > threshold, gated_cost, cost)
