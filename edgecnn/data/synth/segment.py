"""`synth_segment`: a semantic segmentation dataset of the detector's scenes: 4:3 frames of the
classes in `scene.CLASSES` on cluttered backgrounds, each with a PNG mask of class indices
(0 background, then the classes). The mask is the composed scene's owner map, so occluders and
objects in front cut the objects behind them exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data import scene
from edgecnn.data.scene import CLASSES
from edgecnn.data.synth.dataset import GENERATOR_VERSION, build_dataset, image_rng, progress
from edgecnn.data.synth.detect import scene_layers

NAMES = ("background", *CLASSES)


def synth_segment_image(rng: np.random.Generator, imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """One BGR frame (3/4 imgsz high, imgsz wide) and its (h, w) uint8 mask of indices into `NAMES`."""
    h, w = round(imgsz * 3 / 4), imgsz
    frame, _ = scene.render_background(rng, h, w)
    layers, classes = scene_layers(rng, h, w)
    owner = scene.compose(frame, layers)
    lookup = np.zeros(len(classes) + 3, np.uint8)  # owner -2 (occluder) and -1 (background) index the end: 0
    lookup[: len(classes)] = np.asarray(classes, np.uint8) + 1
    mask = lookup[owner]
    return scene.apply_lighting(frame, scene.sample_lighting(rng), rng), mask


def synth_segment(out: str | os.PathLike, n: int = 400, imgsz: int = 320, seed: int = 0, val: int | None = None,
                  force: bool = False) -> dict:
    """Write a segmentation dataset (`task: segment` data.yaml): `n` train and `val` (default n // 4) val images."""
    from edgecnn.data.segment import write_segment_yaml

    val = max(1, n // 4) if val is None else val
    config = {"kind": "segment", "n": n, "val": val, "imgsz": imgsz, "seed": seed, "version": GENERATOR_VERSION}

    def fill(root: Path) -> dict:
        counts = {}
        for split, count in (("train", n), ("val", val)):
            (root / "images" / split).mkdir(parents=True)
            (root / "masks" / split).mkdir(parents=True)
            pixels = np.zeros(len(NAMES), np.int64)
            for i in progress(range(count), f"synth segment {split}"):
                image, mask = synth_segment_image(image_rng(seed, split, i), imgsz)
                name = f"{i:06d}"
                for path, array, params in ((root / "images" / split / f"{name}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92]),
                                            (root / "masks" / split / f"{name}.png", mask, [])):
                    if not cv2.imwrite(str(path), array, params):
                        raise RuntimeError(f"could not write {path}")
                pixels += np.bincount(mask.reshape(-1), minlength=len(NAMES))
            counts[split] = {"images": count, "pixels_per_class": dict(zip(NAMES, pixels.tolist()))}
        write_segment_yaml(root / "data.yaml", list(NAMES), train="images/train", val="images/val")
        return {"names": list(NAMES), "splits": counts, "data_yaml": "data.yaml"}

    return build_dataset(out, config, fill, force)
