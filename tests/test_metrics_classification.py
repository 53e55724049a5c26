import numpy as np
import pytest

from edgecnn.metrics.classification import ClassificationMetrics


def test_topk_and_confusion():
    scores = np.array([
        [0.1, 0.7, 0.2, 0.0, 0.0, 0.0],  # true 1 -> top1 hit
        [0.5, 0.1, 0.4, 0.0, 0.0, 0.0],  # true 2 -> top1 miss, top2 hit
        [-1.0, 0.0, 0.0, 0.1, 0.2, 0.7],  # true 0 -> rank 6, miss in top5
    ])
    labels = np.array([1, 2, 0])
    m = ClassificationMetrics(6, topk=(1, 2, 5))
    m.update(scores[:2], labels[:2])
    m.update(scores[2:], labels[2:])
    out = m.compute()
    assert out["top1"] == pytest.approx(1 / 3)
    assert out["top2"] == pytest.approx(2 / 3)
    assert out["top5"] == pytest.approx(2 / 3)
    confusion = np.array(out["confusion"])
    assert confusion[1, 1] == 1 and confusion[2, 0] == 1 and confusion[0, 5] == 1
    assert confusion.sum() == 3
    assert out["per_class"]["1"] == {"accuracy": 1.0, "n": 1}


def test_topk_larger_than_classes_and_bad_labels():
    m = ClassificationMetrics(3)
    m.update(np.eye(3), [0, 1, 2])
    assert m.compute()["top5"] == 1.0
    with pytest.raises(ValueError, match="out of range"):
        m.update(np.eye(3), [0, 1, 3])
