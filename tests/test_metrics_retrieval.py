"""Retrieval metrics for embedders: rank-k and mAP by hand, and the near-duplicate rule."""

import numpy as np
import pytest

from edgecnn.metrics.retrieval import retrieval_metrics


def test_rank_and_map_match_hand_counts():
    # On a line: a0=0, a1=1, b0=1.5, b1=4. Query a1 ranks b0 (0.5) above a0 (1): AP 1/2.
    emb = np.array([[0.0], [1.0], [1.5], [4.0]])
    labels = np.array([0, 0, 1, 1])
    m = retrieval_metrics(emb, labels)
    # a0: a1 first (AP 1). a1: b0, a0 (AP 1/2). b0: a1, a0, b1 (AP 1/3). b1: b0 first (AP 1).
    assert m["queries"] == 4
    assert m["rank1"] == pytest.approx(2 / 4)
    assert m["rank5"] == 1.0
    assert m["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 4)


def test_same_identity_neighbours_in_time_leave_the_gallery():
    """Two people, each seen at frames 0, 3 (near-identical crops) and 90 (changed pose): finding
    the crop three frames away is easy; finding the one a gap later is the real test."""
    emb = np.array([[0.0, 0.0], [0.01, 0.0], [1.0, 1.2],    # A at frames 0, 3, 90
                    [1.0, 1.0], [1.01, 1.0], [0.0, 0.2]])    # B at frames 0, 3, 90: each came to look like the other
    labels = np.array([0, 0, 0, 1, 1, 1])
    frames = np.array([0, 3, 90, 0, 3, 90])
    assert retrieval_metrics(emb, labels)["rank1"] == pytest.approx(4 / 6)
    m = retrieval_metrics(emb, labels, frames, min_gap=30)
    assert m["queries"] == 6 and m["rank1"] == 0.0
    with pytest.raises(ValueError, match="at least 200 frames apart"):
        retrieval_metrics(emb, labels, frames, min_gap=200)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="embeddings"):
        retrieval_metrics(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="frame numbers"):
        retrieval_metrics(np.zeros((2, 2)), [0, 0], frames=[1])
