"""Classification metrics: top-1 / top-k accuracy and the confusion matrix (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class ClassificationMetrics:
    """Accumulate logits or scores (N, C) and integer labels (N,); `compute()` gives the metrics."""

    def __init__(self, num_classes: int, names: Sequence[str] | None = None, topk: tuple[int, ...] = (1, 5)):
        self.num_classes = num_classes
        self.names = list(names) if names is not None else [str(i) for i in range(num_classes)]
        self.topk = topk
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)  # rows: truth, cols: predicted
        self._hits = dict.fromkeys(topk, 0)
        self.count = 0

    def update(self, scores, labels) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if scores.ndim != 2 or scores.shape[1] != self.num_classes or len(scores) != len(labels):
            raise ValueError(f"expected scores (N, {self.num_classes}) and N labels, got {scores.shape} and {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"label {int(labels.max())} out of range for {self.num_classes} classes")
        ranked = np.argsort(-scores, axis=1, kind="stable")
        for k in self.topk:
            self._hits[k] += int((ranked[:, : min(k, self.num_classes)] == labels[:, None]).any(axis=1).sum())
        np.add.at(self.confusion, (labels, ranked[:, 0]), 1)
        self.count += len(labels)

    def compute(self) -> dict:
        n = max(self.count, 1)
        support = self.confusion.sum(axis=1)
        per_class = {
            name: {"accuracy": float(self.confusion[c, c] / support[c]) if support[c] else 0.0, "n": int(support[c])}
            for c, name in enumerate(self.names)
        }
        out = {f"top{k}": self._hits[k] / n for k in self.topk}
        out.update(images=self.count, per_class=per_class, confusion=self.confusion.tolist())
        return out
