"""Small real data and a really trained model for the compression tests (prune, qat, gates).

A four-class ImageFolder where the class is the quadrant of a small bright square on strong
noise: LeNet-5 learns it to ~100% top-1 in seconds, yet needs its channels to do so, so the
accuracy gates see a real drop when a model is damaged, and none when it is not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

NAMES = ["q0", "q1", "q2", "q3"]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
# A three-class detector for the quantization tests, and random calibration images for it.
DETECTOR_IMGSZ = 64
DETECTOR_META = {"task": "detect", "names": ["a", "b", "c"], "mean": [0.0] * 3, "std": [1.0] * 3, "strides": [8, 16, 32]}


def write_quadrant_dataset(root: Path, train: int = 400, val: int = 160, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            c = i % 4
            image = (rng.random((32, 32, 3)) * 110).astype(np.uint8)
            y, x = (c // 2) * 16 + rng.integers(0, 12), (c % 2) * 16 + rng.integers(0, 12)
            image[y : y + 4, x : x + 4] = 255
            folder = root / split / NAMES[c]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    return root


def train_cfg(data: Path, **overrides) -> dict:
    """Training keys for quick, deterministic runs on the quadrant data (no augmentation)."""
    cfg = {"data": str(data), "batch": 16, "workers": 0, "plots": False, "lr0": 0.005, "warmup_epochs": 0.0,
           "ema": False, "fliplr": 0.0, "scale": 0.0, "translate": 0.0, "degrees": 0.0, "device": "cpu"}
    return {**cfg, **overrides}


def trained_lenet(data: Path, out: Path) -> Path:
    """LeNet-5 (ReLU variant) trained on the quadrant data, saved as an edgecnn checkpoint."""
    from edgecnn.models import build_model, save_checkpoint
    from edgecnn.train.trainer import Trainer

    model = build_model("lenet5", num_classes=4, in_channels=3, classic=False)
    meta = {"names": NAMES, "imgsz": 32, **IMAGENET}
    Trainer(model.train(), train_cfg(data, epochs=10), out / "train", meta, save=False).fit()
    return save_checkpoint(out / "lenet.pt", model, meta)


def calibration_dir(tmp_path, count: int = 4):
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), (rng.random((48, 80, 3)) * 255).astype(np.uint8))
    return sorted(tmp_path.glob("*.jpg"))
