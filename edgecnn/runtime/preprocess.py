"""The model's input: `imgsz` as (h, w), letterbox resize (keep the aspect ratio, pad to the size)."""

from __future__ import annotations

import cv2
import numpy as np

from edgecnn.runtime.boxes import clip_boxes

PAD_VALUE = 114  # the letterbox grey; training's mosaic and affine borders use it too


def input_hw(imgsz) -> tuple[int, int]:
    """An `imgsz` as (h, w): an int (or [n]) is a square input, [h, w] is height and width."""
    if isinstance(imgsz, (int, np.integer)) and not isinstance(imgsz, bool):
        sizes = [int(imgsz)] * 2
    else:
        try:
            sizes = [int(v) for v in imgsz]
        except (TypeError, ValueError):
            sizes = []
        sizes = sizes * 2 if len(sizes) == 1 else sizes
    if len(sizes) != 2 or min(sizes) <= 0:
        raise ValueError(f"imgsz must be a positive int or [h, w], got {imgsz!r}")
    return sizes[0], sizes[1]


def letterbox_geometry(hw: tuple[int, int], size: tuple[int, int]) -> tuple[tuple[float, float], tuple[int, int], tuple[int, int]]:
    """((scale_x, scale_y), (new_h, new_w), (left, top)): how `letterbox` fits an image of `hw` into
    `size`. Each side is rounded to whole pixels, so each axis has its own exact scale (new / old),
    as Ultralytics' `scale_boxes` has: one nominal scale puts boxes up to a pixel off at the far edge."""
    scale = min(size[0] / hw[0], size[1] / hw[1])
    new_h, new_w = max(round(hw[0] * scale), 1), max(round(hw[1] * scale), 1)
    return (new_w / hw[1], new_h / hw[0]), (new_h, new_w), ((size[1] - new_w) // 2, (size[0] - new_h) // 2)


def image_region(hw: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """x1, y1, x2, y2 of an image of `hw` inside its letterbox of `size`: where `unletterbox_boxes`
    clips boxes to the frame, in model pixels."""
    _, (new_h, new_w), (left, top) = letterbox_geometry(hw, size)
    return np.array([left, top, left + new_w, top + new_h], np.float32)


def letterbox(
    image: np.ndarray, size: tuple[int, int], color: int = PAD_VALUE
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize `image` (H, W, C) to fit `size` (h, w) and pad the rest with `color`.

    Returns the padded image, the (x, y) scales applied and the (left, top) padding, so that a box
    in model pixels maps back to the frame as (x - left) / scale_x, (y - top) / scale_y.
    """
    h, w = image.shape[:2]
    scale, (new_h, new_w), (left, top) = letterbox_geometry((h, w), size)
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if min(scale) < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interp)
    out = np.full((*size, image.shape[2]), color, dtype=image.dtype)
    out[top : top + new_h, left : left + new_w] = image
    return out, scale, (float(left), float(top))


def unletterbox_boxes(boxes: np.ndarray, scale: tuple[float, float], pad: tuple[float, float],
                      frame_hw: tuple[int, int]) -> np.ndarray:
    """Map xyxy boxes from model pixels back to frame pixels (per-axis `scale`), clipped to the frame."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - pad[0]) / scale[0]
    out[:, [1, 3]] = (out[:, [1, 3]] - pad[1]) / scale[1]
    return clip_boxes(out, frame_hw)
