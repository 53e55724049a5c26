"""CamVid's road scenes as a detection set: a box round each connected region of a car, a pedestrian
or a bicyclist in the per-pixel labels (../shared/data/camvid), YOLO labels beside links to the images.

    PYTHONPATH=. python benchmarks/camvid_boxes.py [--min-side 8] [--out DIR]

Real photographs with real objects are what the int8 benchmarks need, and CamVid's masks are the
only labelled real images here besides coco128's 128. Semantic labels are not instances: people
walking side by side or parked cars that touch become one box, in the train and the val split alike,
so a detector learns that convention and is scored against it. Regions whose box has a side under
`--min-side` pixels (at 480x360) are dropped. Writes DIR/data.yaml (default
runs/benchmarks/data/camvid-boxes) and prints the box counts (2101 train, 543 val at the default).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
import yaml

from common import OUT

from edgecnn.fileio import atomic_write_text

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
MIN_SIDE = 8  # pixels at 480x360: smaller regions are a few pixels of a far object or label noise
CLASSES = {8: "car", 9: "pedestrian", 10: "bicyclist"}  # CamVid index -> detection class (in this order)


def mask_boxes(mask: np.ndarray, min_side: int) -> list[tuple[int, float, float, float, float]]:
    """(class, x_center, y_center, width, height), normalized, of each connected region of CLASSES."""
    height, width = mask.shape
    boxes = []
    for cls, index in enumerate(CLASSES):
        count, _, stats, _ = cv2.connectedComponentsWithStats((mask == index).astype(np.uint8), connectivity=8)
        for left, top, w, h, _ in stats[1:count]:  # row 0 is the background
            if min(w, h) >= min_side:
                boxes.append((cls, (left + w / 2) / width, (top + h / 2) / height, w / width, h / height))
    return boxes


def convert(camvid: Path, out: Path, min_side: int = MIN_SIDE) -> dict[str, int]:
    """Write out/images/<split> (links), out/labels/<split>/*.txt and out/data.yaml; boxes per split."""
    counts = {}
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        counts[split] = 0
        for image in sorted((camvid / "images" / split).glob("*.jpg")):
            mask_path = camvid / "masks" / split / f"{image.stem}.png"
            mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
            if mask is None:
                raise ValueError(f"{mask_path}: missing or unreadable mask for {image}")
            boxes = mask_boxes(mask, min_side)
            counts[split] += len(boxes)
            link = out / "images" / split / image.name
            if not link.exists():
                os.symlink(image.resolve(), link)
            atomic_write_text(out / "labels" / split / f"{image.stem}.txt",
                              "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes))
    spec = {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(CLASSES.values()))}
    atomic_write_text(out / "data.yaml", yaml.safe_dump(spec, sort_keys=False))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", type=Path, default=CAMVID)
    parser.add_argument("--min-side", type=int, default=MIN_SIDE)
    parser.add_argument("--out", type=Path, default=OUT / "data" / "camvid-boxes")
    args = parser.parse_args()
    if not (args.camvid / "masks").is_dir():
        raise SystemExit(f"no CamVid at {args.camvid} (../shared/data/camvid, see its README)")
    print(convert(args.camvid, args.out, args.min_side), "boxes ->", args.out / "data.yaml")


if __name__ == "__main__":
    main()
