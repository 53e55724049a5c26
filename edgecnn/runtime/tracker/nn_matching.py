"""Appearance distance: cosine distance to the nearest of each track's recent embeddings."""

from __future__ import annotations

import numpy as np


def normalize(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


class NearestNeighborDistanceMetric:
    """A gallery of the last `budget` embeddings per track id (all of them when budget is None).

    `distance` is the smallest cosine distance between a detection and any embedding in the
    track's gallery, which tolerates pose and lighting changes better than one running mean.
    """

    def __init__(self, matching_threshold: float, budget: int | None = 100):
        self.matching_threshold = matching_threshold
        self.budget = budget
        self.samples: dict[int, np.ndarray] = {}

    def partial_fit(self, features: np.ndarray, targets: np.ndarray, active_targets: list[int]) -> None:
        """Append `features[i]` to the gallery of `targets[i]`; forget tracks not in `active_targets`."""
        features = normalize(features) if len(features) else features
        for target in np.unique(targets):
            new = features[targets == target]
            gallery = self.samples.get(int(target))
            gallery = new if gallery is None else np.concatenate([gallery, new])
            self.samples[int(target)] = gallery if self.budget is None else gallery[-self.budget :]
        active = set(active_targets)
        self.samples = {k: v for k, v in self.samples.items() if k in active}

    def distance(self, features: np.ndarray, targets: list[int]) -> np.ndarray:
        """(len(targets), len(features)) cost; a target without a gallery costs 1 (no evidence)."""
        cost = np.ones((len(targets), len(features)), dtype=np.float64)
        have = [i for i, t in enumerate(targets) if t in self.samples]
        if not have or not len(features):
            return cost
        galleries = [self.samples[targets[i]] for i in have]
        stacked = np.concatenate(galleries)
        starts = np.cumsum([0] + [len(g) for g in galleries[:-1]])
        similarity = stacked @ normalize(features).T  # (sum of gallery sizes, M)
        cost[have] = 1.0 - np.maximum.reduceat(similarity, starts, axis=0)
        return cost
