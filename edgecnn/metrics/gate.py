"""Accuracy gates: a stage fails loudly when its model lost more than allowed against its parent."""

from __future__ import annotations


class GateError(RuntimeError):
    """A model lost more accuracy than its gate allows; it must not reach the device."""


def check_drop(metric: str, parent: float, child: float, max_drop: float, what: str) -> float:
    """Raise GateError if `child` is more than `max_drop` points below `parent`.

    Metrics are fractions (0..1); `max_drop` is in points (1.0 = one percentage point).
    Returns the drop in points.
    """
    drop = (parent - child) * 100.0
    if drop > max_drop:
        raise GateError(
            f"gate failed for {what}: {metric} fell from {parent * 100:.2f} to {child * 100:.2f} "
            f"({drop:.2f} points > max_drop={max_drop}); the model is not passed on"
        )
    return drop
