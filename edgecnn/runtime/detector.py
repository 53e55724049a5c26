"""Frames in, detections in frame pixels out: letterbox → backend → decode + NMS → un-letterbox.

`edgecnn val` and `edgecnn track` both go through `Detector`, so validation scores exactly the
path the device runs.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from edgecnn.config import ConfigError
from edgecnn.runtime.backends import Backend
from edgecnn.runtime.postprocess import Detections, postprocess
from edgecnn.runtime.preprocess import letterbox, unletterbox_boxes


def class_ids(classes: list | None, names: list[str]) -> tuple[int, ...] | None:
    """Class names or ids → ids; an unknown name is an error listing the model's classes."""
    if not classes:
        return None
    ids = []
    for c in classes:
        if isinstance(c, int) or str(c).isdigit():
            ids.append(int(c))
        elif c in names:
            ids.append(names.index(c))
        else:
            raise ConfigError(f"classes: '{c}' is not a class of this model ({', '.join(names)})")
    return tuple(ids)


class Detector:
    """A detection backend with its thresholds: `detect(frame_bgr) -> Detections`."""

    def __init__(self, backend: Backend, conf: float = 0.25, iou: float = 0.45,
                 classes: Sequence[int] | None = None, max_det: int = 300):
        if backend.meta["task"] != "detect":
            raise ValueError(f"{backend.path}: a {backend.meta['task']} model, not a detector")
        self.backend = backend
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.classes = tuple(classes) if classes is not None else None
        self.names: list[str] = list(backend.meta["names"])
        self.strides = tuple(backend.meta["strides"])

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        return self.detect_batch([frame_bgr], bgr=True)[0]

    def detect_batch(self, frames: Sequence[np.ndarray], bgr: bool = True) -> list[Detections]:
        """Detections for each frame (BGR as OpenCV reads them, or RGB with `bgr=False`)."""
        boxed, geometry = [], []
        for frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if bgr else frame
            image, scale, pad = letterbox(rgb, self.backend.input_size)
            boxed.append(image)
            geometry.append((scale, pad, frame.shape[:2]))
        outputs = self.backend.predict(np.stack(boxed))
        results = postprocess(
            outputs["boxes"], outputs["scores"], self.backend.input_size, self.strides,
            conf=self.conf, iou=self.iou, classes=self.classes, max_det=self.max_det,
        )
        for det, (scale, pad, frame_hw) in zip(results, geometry):
            det.xyxy = unletterbox_boxes(det.xyxy, scale, pad, frame_hw)
        return results
