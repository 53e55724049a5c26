"""DeepSORT multi-target tracking on numpy and scipy: `Tracker(...).update(detections, features=…) -> Tracks`.

`detections` is the detector's record (`runtime.postprocess.Detections`). One idea per module, as
in deep_sort: `gallery` (which embeddings may be used), `kalman_filter` (motion),
`iou_matching` and `nn_matching` (costs), `linear_assignment` (gated matching and the cascade),
`track` (life cycle, and the `Tracks` record a frame returns), `tracker`.
"""

from edgecnn.runtime.postprocess import Detections
from edgecnn.runtime.tracker.track import Tracks
from edgecnn.runtime.tracker.tracker import TRACKER_KEYS, Tracker

__all__ = ["TRACKER_KEYS", "Detections", "Tracker", "Tracks"]
