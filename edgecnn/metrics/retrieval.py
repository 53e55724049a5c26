"""Retrieval metrics for embedders (ReID): rank-1 / rank-5 and mAP, every sample querying the rest."""

from __future__ import annotations

import numpy as np


def retrieval_metrics(embeddings, labels) -> dict:
    """Each sample whose identity has another sample queries all others by Euclidean distance.

    Returns rank1, rank5 (share of queries with a same-identity sample among the nearest 1 / 5),
    mAP (mean average precision of the ranked gallery) and the number of queries.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if emb.ndim != 2 or len(emb) != len(labels):
        raise ValueError(f"expected embeddings (N, D) and N labels, got {emb.shape} and {labels.shape}")
    sq = (emb**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * emb @ emb.T
    np.fill_diagonal(dist, np.inf)
    ranks1 = ranks5 = 0
    aps = []
    for q in range(len(emb)):
        same = labels == labels[q]
        same[q] = False
        if not same.any():
            continue
        order = np.argsort(dist[q], kind="stable")[:-1]  # the query itself sorts last (inf)
        hits = same[order]
        ranks1 += bool(hits[0])
        ranks5 += bool(hits[:5].any())
        precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps.append(precision_at_hit.mean())
    n = len(aps)
    if n == 0:
        raise ValueError("retrieval needs at least one identity with two samples")
    return {"rank1": ranks1 / n, "rank5": ranks5 / n, "mAP": float(np.mean(aps)), "queries": n}
