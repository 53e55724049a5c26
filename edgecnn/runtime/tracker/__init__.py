"""DeepSORT multi-target tracking on numpy and scipy: `Tracker(...).update(boxes, scores, features)`.

One idea per module, as in deep_sort: `kalman_filter` (motion), `iou_matching` and `nn_matching`
(costs), `linear_assignment` (gated matching and the cascade), `track` (life cycle), `tracker`.
"""

from edgecnn.runtime.tracker.tracker import OUTPUT_COLUMNS, TRACKER_KEYS, Tracker

__all__ = ["OUTPUT_COLUMNS", "TRACKER_KEYS", "Tracker"]
