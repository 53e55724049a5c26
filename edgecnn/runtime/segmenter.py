"""Semantic segmentation on the device: frame → letterbox → model → class map at the frame's size.

What a segmentation artifact outputs (`segmentation`, its metadata's `seg_output` and `seg_stride`):
`logits` NHWC float (dequantized from int8 by the backend) at 1/`seg_stride` of the input, or
`classes` NHW class ids at the input size (argmax inside the graph). Logits below the input size
are brought up here: `upsample="linear"` resizes the logits bilinearly (half-pixel centres, as
PyTorch's `interpolate(align_corners=False)`) before the argmax, `"nearest"` takes the argmax at
the model's stride and repeats it. `benchmarks/seg_export.py` measures what each choice costs.
Then the letterboxed image's own region is cut out and brought to the frame's size (nearest).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from edgecnn.runtime.preprocess import letterbox, letterbox_geometry

UPSAMPLING = ("linear", "nearest")


def check_segmenter(backend, where: str | None = None) -> None:
    """A clear error when `backend` is not a segmentation model (a detector given to the seg app)."""
    task = backend.meta["task"]
    if task != "segment":
        raise ValueError(f"{where or backend.path}: a {task} model; the segmentation app needs a segment model "
                         "(export one trained with a seg model, e.g. model=lraspp-mnv3)")


class Segmenter:
    """Class maps (H, W) of BGR frames (uint8; uint16 beyond 256 classes), with the device's own
    pre- and post-processing."""

    def __init__(self, backend, upsample: str | None = None):
        check_segmenter(backend)
        upsample = upsample or backend.meta.get("seg_upsample", "linear")
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {upsample!r}")
        self.backend, self.upsample = backend, upsample
        self.names = list(backend.meta["names"])
        self.classes_out = backend.meta.get("seg_output", "logits") == "classes"
        self.dtype = np.uint8 if len(self.names) <= 256 else np.uint16

    def segment(self, frame: np.ndarray, bgr: bool = True) -> np.ndarray:
        return self.segment_batch([frame], bgr)[0]

    def segment_batch(self, frames: Sequence[np.ndarray], bgr: bool = True) -> list[np.ndarray]:
        """Class maps of camera frames (BGR), or of RGB images with `bgr=False` (validation)."""
        size = self.backend.input_size
        images = np.stack([letterbox(cv2.cvtColor(f, cv2.COLOR_BGR2RGB) if bgr else f, size)[0] for f in frames])
        outputs = self.backend.predict(images)["segmentation"]
        return [self.to_frame(out, frame.shape[:2]) for out, frame in zip(outputs, frames)]

    def to_frame(self, output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """One image's model output → its class map at `frame_hw`."""
        classes = self.input_classes(output)
        _, (new_h, new_w), (left, top) = letterbox_geometry(frame_hw, self.backend.input_size)
        classes = classes[top : top + new_h, left : left + new_w]
        if classes.shape != tuple(frame_hw):
            classes = cv2.resize(classes, frame_hw[::-1], interpolation=cv2.INTER_NEAREST)
        return classes

    def input_classes(self, output: np.ndarray) -> np.ndarray:
        """Class ids (h, w) at the model's input size from its raw output."""
        h, w = self.backend.input_size
        if self.classes_out:
            classes = output.astype(self.dtype)
            return classes if classes.shape == (h, w) else cv2.resize(classes, (w, h), interpolation=cv2.INTER_NEAREST)
        if output.shape[:2] != (h, w) and self.upsample == "linear":
            output = resize_logits(output, (h, w))
        classes = output.argmax(axis=-1).astype(self.dtype)
        return classes if classes.shape == (h, w) else cv2.resize(classes, (w, h), interpolation=cv2.INTER_NEAREST)


def resize_logits(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (h, w, C) logits; OpenCV takes at most 512 channels per call (CV_CN_MAX)."""
    parts = [cv2.resize(logits[..., i : i + 512], hw[::-1], interpolation=cv2.INTER_LINEAR)
             for i in range(0, logits.shape[-1], 512)]
    parts = [p[..., None] if p.ndim == 2 else p for p in parts]  # cv2 drops a single channel's axis
    return np.concatenate(parts, axis=-1)


def area_fractions(classes: np.ndarray, num_classes: int, where: np.ndarray | None = None) -> np.ndarray:
    """The share of each class among the pixels of `classes` (within the boolean mask `where`)."""
    values = classes[where] if where is not None else classes.ravel()
    counts = np.bincount(values, minlength=num_classes)[:num_classes]
    return counts / max(int(values.size), 1)


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 BGR colours, well spread (golden-ratio hue steps), stable per class id."""
    hues = (np.arange(num_classes) * 0.618033988749895 % 1.0 * 179).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 255)], axis=-1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def overlay(frame: np.ndarray, classes: np.ndarray, colors: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The frame with each pixel tinted by its class colour (a new image)."""
    return cv2.addWeighted(frame, 1.0 - alpha, colors[classes], alpha, 0.0)
