"""`synth_detect`: a YOLO dataset of the classes in `scene.CLASSES` on cluttered backgrounds, sizes
from a few pixels to most of the frame, cut by the frame border and by each other, under varied
light, blur and noise. Labels are the tight boxes of each object's visible pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data import scene
from edgecnn.data.scene import CLASSES, Layer
from edgecnn.data.yolo import format_labels
from edgecnn.runtime.boxes import xyxy_to_cxcywh
from edgecnn.data.synth.dataset import GENERATOR_VERSION, MIN_BOX_PX, MIN_VISIBILITY, build_dataset, image_rng, progress


def detect_frame_size(rng: np.random.Generator, imgsz: int) -> tuple[int, int]:
    """(h, w) with the longer side `imgsz`: square, 4:3, 3:4 or 16:9, as cameras and photos are."""
    ratio = (1.0, 0.75, 1 / 0.75, 9 / 16)[int(rng.integers(4))]
    return (imgsz, round(imgsz / ratio)) if ratio > 1 else (round(imgsz * ratio), imgsz)


def scene_layers(rng: np.random.Generator, h: int, w: int) -> tuple[list[Layer], list[int]]:
    """0 to 8 objects of random classes, sizes and places, in depth order, with occluders among
    them: the layers to compose and each object's class (indexed by `Layer.owner`)."""
    count = 0 if rng.random() < 0.05 else int(rng.integers(1, 9))
    layers, classes = [], []
    for index in range(count):
        cls = int(rng.integers(len(CLASSES)))
        style = scene.sample_style(CLASSES[cls], rng)
        size = min(h, w) * float(np.exp(rng.uniform(np.log(0.05), np.log(0.75))))
        patch, mask = scene.render_object(style, size, phase=float(rng.uniform(0, 2 * np.pi)))
        ph, pw = mask.shape
        x = int(rng.uniform(-0.2 * pw, w - 0.8 * pw))
        y = int(rng.uniform(-0.2 * ph, h - 0.8 * ph))
        layers.append(Layer(patch, mask, x, y, index))
        classes.append(cls)
    layers.sort(key=lambda layer: layer.y + layer.mask.shape[0])  # lower in the frame = nearer
    for _ in range(int(rng.integers(1, 3)) if rng.random() < 0.3 else 0):
        patch, mask, x, y = scene.render_occluder(rng, h, w)
        layers.insert(int(rng.integers(len(layers) // 2, len(layers) + 1)), Layer(patch, mask, x, y, -2))
    return layers, classes


def synth_detect_image(rng: np.random.Generator, imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """One BGR image and its labels (N, 5) float32 [cls, cx, cy, w, h] normalized."""
    h, w = detect_frame_size(rng, imgsz)
    background, _ = scene.render_background(rng, h, w)
    layers, classes = scene_layers(rng, h, w)
    while True:  # hidden objects leave the scene; removing one only uncovers others
        frame = background.copy()
        visible = scene.visible_boxes(scene.compose(frame, layers), layers)
        hidden = {k for k, (box, vis) in visible.items()
                  if box is None or vis < MIN_VISIBILITY or min(box[2] - box[0], box[3] - box[1]) < MIN_BOX_PX}
        if not hidden:
            break
        layers = [layer for layer in layers if layer.owner not in hidden]
    frame = scene.apply_lighting(frame, scene.sample_lighting(rng), rng)
    order = sorted(visible)
    boxes = np.array([visible[k][0] for k in order], np.float64).reshape(-1, 4)
    labels = np.concatenate([np.array([classes[k] for k in order], np.float64)[:, None],
                             xyxy_to_cxcywh(boxes) / [w, h, w, h]], axis=1)
    return frame, labels.astype(np.float32)


def synth_detect(out: str | os.PathLike, n: int = 800, imgsz: int = 320, seed: int = 0, val: int | None = None,
                 force: bool = False) -> dict:
    """Write a YOLO dataset: `n` train and `val` (default n // 4) val images; returns its record."""
    val = max(1, n // 4) if val is None else val
    config = {"kind": "detect", "n": n, "val": val, "imgsz": imgsz, "seed": seed, "version": GENERATOR_VERSION}

    def fill(root: Path) -> dict:
        from edgecnn.data.yolo import write_data_yaml

        counts = {}
        for split, count in (("train", n), ("val", val)):
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)
            boxes = 0
            for i in progress(range(count), f"synth detect {split}"):
                image, labels = synth_detect_image(image_rng(seed, split, i), imgsz)
                name = f"{i:06d}"
                if not cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                    raise RuntimeError(f"could not write {root / 'images' / split / name}.jpg")
                (root / "labels" / split / f"{name}.txt").write_text(format_labels(labels))
                boxes += len(labels)
            counts[split] = {"images": count, "boxes": boxes}
        write_data_yaml(root / "data.yaml", list(CLASSES), train="images/train", val="images/val")
        return {"names": list(CLASSES), "splits": counts, "data_yaml": "data.yaml"}

    return build_dataset(out, config, fill, force)
