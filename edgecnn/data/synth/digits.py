"""`synth_classify`: an ImageFolder of MNIST-like digits (10 classes; white strokes on black in
Hershey fonts, slanted and elastically bent, size-normalized and centred by mass), LeNet-5 sized.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data import scene
from edgecnn.data.synth.dataset import GENERATOR_VERSION, build_dataset, image_rng, progress

DIGITS = tuple(str(d) for d in range(10))

# Hershey fonts closest to handwriting first in spirit: the script faces and italics are drawn
# as often as the upright ones.
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
         cv2.FONT_ITALIC | cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_ITALIC | cv2.FONT_HERSHEY_COMPLEX)
DIGIT_CANVAS = 96  # glyphs are drawn and distorted at this size, then reduced as MNIST's were


def elastic(image: np.ndarray, rng: np.random.Generator, amplitude: float, cells: int = 3) -> np.ndarray:
    """Simard et al. (2003) elastic distortion: a smooth random displacement field of about
    `amplitude` pixels, made of ~`cells` blobs across (hand-made: OpenCV and torchvision v2's
    ElasticTransform draw from the global torch RNG, not a per-image generator)."""
    h, w = image.shape[:2]
    field = (scene.lowfreq_noise(rng, h, w, cells, channels=2) - 0.5) * 2 * amplitude
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR, borderValue=0)


def mnist_frame(glyph: np.ndarray, imgsz: int) -> np.ndarray:
    """MNIST's normalization: the glyph's bounding box fitted into a 20/32 box keeping its aspect,
    placed so its centre of mass is the image centre (LeCun et al., 1998)."""
    ys, xs = np.nonzero(glyph > 8)
    crop = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    box = imgsz * 20 / 32
    factor = box / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    moments = cv2.moments(small)
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    shift = np.float32([[1, 0, imgsz / 2 - cx], [0, 1, imgsz / 2 - cy]])
    return cv2.warpAffine(small, shift, (imgsz, imgsz), flags=cv2.INTER_LINEAR, borderValue=0)


def synth_digit(rng: np.random.Generator, digit: int, imgsz: int) -> np.ndarray:
    """An MNIST-like BGR digit: a white stroke on black in a random Hershey font and stroke width,
    slanted, sheared, squeezed and elastically bent as handwriting is, then size-normalized and
    centred by mass as MNIST's digits were."""
    size = DIGIT_CANVAS
    canvas = np.zeros((size, size), np.float32)
    font, thickness = FONTS[int(rng.integers(len(FONTS)))], int(rng.integers(4, 12))
    scale = 3.4 if font == cv2.FONT_HERSHEY_PLAIN else 2.4
    (tw, th), _ = cv2.getTextSize(str(digit), font, scale, thickness)
    cv2.putText(canvas, str(digit), ((size - tw) // 2, (size + th) // 2), font, scale, 255.0, thickness, cv2.LINE_AA)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-15, 15), 1.0)
    matrix[:, :2] = matrix[:, :2] @ np.float32([[rng.uniform(0.75, 1.15), rng.uniform(-0.35, 0.35)], [0, 1]])
    matrix[:, 2] += (size / 2) * (1 - matrix[:, :2].sum(1))  # keep the centre in place
    canvas = cv2.warpAffine(canvas, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    canvas = elastic(canvas, rng, amplitude=rng.uniform(2, 7))
    digit_image = mnist_frame(np.clip(canvas, 0, 255), imgsz)
    return cv2.cvtColor(np.clip(digit_image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def synth_classify(out: str | os.PathLike, n: int = 2000, imgsz: int = 32, seed: int = 0, val: int | None = None,
                   force: bool = False) -> dict:
    """Write an ImageFolder `train/<digit>/*.png`, `val/<digit>/*.png`; classes are balanced."""
    val = max(len(DIGITS), n // 4) if val is None else val
    config = {"kind": "classify", "style": "mnist", "n": n, "val": val, "imgsz": imgsz, "seed": seed,
              "version": GENERATOR_VERSION}

    def fill(root: Path) -> dict:
        for split, count in (("train", n), ("val", val)):
            for digit in DIGITS:
                (root / split / digit).mkdir(parents=True)
            for i in progress(range(count), f"synth classify {split}"):
                digit = i % len(DIGITS)
                image = synth_digit(image_rng(seed, split, i), digit, imgsz)
                path = root / split / DIGITS[digit] / f"{i:06d}.png"
                if not cv2.imwrite(str(path), image):
                    raise RuntimeError(f"could not write {path}")
        return {"names": list(DIGITS), "splits": {"train": {"images": n}, "val": {"images": val}}}

    return build_dataset(out, config, fill, force)
