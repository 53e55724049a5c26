"""Retrieval metrics for embedders (ReID): rank-1 / rank-5 and mAP, every sample querying the rest."""

from __future__ import annotations

import numpy as np


def retrieval_metrics(embeddings, labels, frames=None, min_gap: int = 0) -> dict:
    """Each sample whose identity has another sample queries all others by Euclidean distance.

    With `frames` (each sample's frame number), same-identity samples fewer than `min_gap` frames
    from the query are left out of its gallery, as Market-1501 leaves out same-camera matches:
    crops of one track a few frames apart are near-duplicates, and finding them says nothing about
    finding the person again after a gap. Queries with no same-identity sample left are skipped.

    Returns rank1, rank5 (share of queries with a same-identity sample among the nearest 1 / 5),
    mAP (mean average precision of the ranked gallery) and the number of queries.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if emb.ndim != 2 or len(emb) != len(labels):
        raise ValueError(f"expected embeddings (N, D) and N labels, got {emb.shape} and {labels.shape}")
    frames = None if frames is None else np.asarray(frames, dtype=np.int64).reshape(-1)
    if frames is not None and len(frames) != len(labels):
        raise ValueError(f"expected {len(labels)} frame numbers, got {len(frames)}")
    sq = (emb**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * emb @ emb.T
    ranks1 = ranks5 = 0
    aps = []
    for q in range(len(emb)):
        same = labels == labels[q]
        gallery = np.arange(len(emb)) != q
        if frames is not None and min_gap > 0:
            gallery &= ~(same & (np.abs(frames - frames[q]) < min_gap))
        if not (same & gallery).any():
            continue
        candidates = np.flatnonzero(gallery)
        hits = same[candidates[np.argsort(dist[q, candidates], kind="stable")]]
        ranks1 += bool(hits[0])
        ranks5 += bool(hits[:5].any())
        precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps.append(precision_at_hit.mean())
    n = len(aps)
    if n == 0:
        raise ValueError("retrieval needs at least one identity with two samples" +
                         (f" at least {min_gap} frames apart" if frames is not None and min_gap > 0 else ""))
    return {"rank1": ranks1 / n, "rank5": ranks5 / n, "mAP": float(np.mean(aps)), "queries": n}
