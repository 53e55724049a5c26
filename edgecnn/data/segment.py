"""Semantic segmentation datasets: a `data.yaml` with `task: segment`, images with class-index masks.

The yaml is a YOLO `data.yaml` (`path`, `train`, `val`, `test`, `names`; see `edgecnn.data.yolo`)
plus `task: segment`, `ignore_index` (pixels scored nowhere; default 255, CamVid's is 11) and
optionally `background` (the class of pixels no polygon covers; default the ignore index).

The mask of `<root>/images/<rest>/x.jpg` is `<root>/masks/<rest>/x.png`: one channel (8/16-bit
grey or a palette PNG read as indices), pixel value = class index, the image's size. Without a
mask PNG, Ultralytics YOLO-seg labels `<root>/labels/<rest>/x.txt` (`class x1 y1 x2 y2 ...`,
normalized polygon vertices, one object per line) are rasterized with `cv2.fillPoly`, in file
order. An image with neither, a mask of another size, or a class index outside the names (other
than the ignore index) is a ValueError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.yolo import COORD_TOLERANCE, DatasetSpec, image_shape, label_path, load_data_yaml
from edgecnn.metrics.segmentation import DEFAULT_IGNORE_INDEX

MASK_SUFFIX = ".png"


@dataclass(frozen=True)
class SegmentationSpec(DatasetSpec):
    """A `data.yaml` with `task: segment`: the `DatasetSpec` and the label conventions."""

    ignore_index: int = DEFAULT_IGNORE_INDEX
    background: int = DEFAULT_IGNORE_INDEX


def read_task(path: str | os.PathLike) -> str | None:
    """The `task:` of a data.yaml (None when it has none or is not a mapping)."""
    import yaml

    path = Path(path)
    path = path / "data.yaml" if path.is_dir() else path
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data.get("task") if isinstance(data, dict) else None


def load_segment_yaml(path: str | os.PathLike) -> SegmentationSpec:
    """Parse and check a segmentation `data.yaml` (split paths must exist)."""
    import yaml

    spec = load_data_yaml(path)
    data = yaml.safe_load(spec.yaml_path.read_text())
    values = {}
    for key in ("ignore_index", "background"):
        value = data.get(key, values.get("ignore_index", DEFAULT_IGNORE_INDEX))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ValueError(f"{spec.yaml_path}: '{key}' must be a pixel value 0..65535, got {value!r}")
        values[key] = value
    if values["ignore_index"] < spec.nc:
        raise ValueError(f"{spec.yaml_path}: ignore_index {values['ignore_index']} is one of the {spec.nc} class ids")
    if values["background"] != values["ignore_index"] and values["background"] >= spec.nc:
        raise ValueError(f"{spec.yaml_path}: background {values['background']} is not a class id 0..{spec.nc - 1}")
    return SegmentationSpec(spec.root, spec.names, spec.splits, spec.yaml_path, **values)


def write_segment_yaml(path: str | os.PathLike, names, train: str, val: str, root: str = ".",
                       ignore_index: int = DEFAULT_IGNORE_INDEX) -> Path:
    """Write a segmentation `data.yaml` atomically."""
    import yaml

    from edgecnn.fileio import atomic_write_text

    data = {"task": "segment", "path": root, "train": train, "val": val, "nc": len(names),
            "names": dict(enumerate(names)), "ignore_index": ignore_index}
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def mask_path(image: str | os.PathLike) -> Path:
    """`…/images/…/x.jpg` → `…/masks/…/x.png` (the last `images` folder)."""
    parts = list(Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "masks"
            break
    return Path(*parts).with_suffix(MASK_SUFFIX)


def label_source(image: Path) -> Path:
    """The mask PNG of `image`, else its YOLO-seg polygon file; neither is a ValueError."""
    for candidate in (mask_path(image), label_path(image)):
        if candidate.is_file():
            return candidate
    raise ValueError(f"{image}: no mask ({mask_path(image)}) and no polygon labels ({label_path(image)})")


def read_mask_png(path: Path) -> np.ndarray:
    """A single-channel mask of class indices; palette PNGs give their indices, not colours."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise ValueError(f"{path}: a mask must be one channel of class indices, found a {im.mode} image")
            return np.asarray(im, dtype=np.int64 if im.mode.startswith("I") else np.uint8)
    except OSError as err:
        raise ValueError(f"{path}: cannot read the mask ({err})") from None


def rasterize_polygons(path: Path, shape: tuple[int, int], nc: int, fill: int) -> np.ndarray:
    """YOLO-seg polygon lines → a (h, w) class map; pixels no polygon covers get `fill`."""
    h, w = shape
    mask = np.full((h, w), fill, np.uint8 if max(fill, nc) < 256 else np.uint16)
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{lineno}"
        if len(parts) < 7 or len(parts) % 2 == 0:
            raise ValueError(f"{where}: expected 'class x1 y1 x2 y2 x3 y3 ...' (at least 3 points), got {len(parts)} values")
        try:
            cls, coords = float(parts[0]), np.asarray(parts[1:], np.float64).reshape(-1, 2)
        except ValueError:
            raise ValueError(f"{where}: not a number in '{line.strip()}'") from None
        if cls != int(cls) or not 0 <= cls < nc:
            raise ValueError(f"{where}: class id {parts[0]} is not one of 0..{nc - 1}")
        if not np.isfinite(coords).all() or coords.min() < -COORD_TOLERANCE or coords.max() > 1 + COORD_TOLERANCE:
            raise ValueError(f"{where}: polygon coordinates must be normalized to [0, 1]")
        points = np.round(coords.clip(0, 1) * [w, h]).astype(np.int32)
        cv2.fillPoly(mask, [points], int(cls))
    return mask


def check_mask(mask: np.ndarray, path: Path, image: Path, shape: tuple[int, int], spec: SegmentationSpec) -> np.ndarray:
    if mask.shape[:2] != tuple(shape):
        raise ValueError(f"{path}: the mask is {mask.shape[1]}x{mask.shape[0]} but its image {image} is {shape[1]}x{shape[0]}")
    values = np.unique(mask)
    bad = values[(values >= spec.nc) & (values != spec.ignore_index)]
    if len(bad):
        raise ValueError(f"{path}: class index {int(bad[0])} is not one of 0..{spec.nc - 1} "
                         f"(names has {spec.nc}; the ignore index is {spec.ignore_index})")
    return mask


def read_mask(source: Path, image: Path, spec: SegmentationSpec, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The checked (h, w) class map of `image` from `source` (a mask PNG or a polygon file)."""
    shape = shape or image_shape(image)
    if shape is None:
        raise ValueError(f"{image}: cannot read image")
    if source.suffix == ".txt":
        mask = rasterize_polygons(source, shape, spec.nc, spec.background)
    else:
        mask = read_mask_png(source)
    return check_mask(mask, source, image, shape, spec)


def letterbox_mask(mask: np.ndarray, size: tuple[int, int], fill: int) -> np.ndarray:
    """`mask` placed as `runtime.preprocess.letterbox` places its image, sampled nearest (class
    ids never blend); the padding is `fill` (the ignore index)."""
    from edgecnn.runtime.preprocess import letterbox_geometry

    h, w = mask.shape[:2]
    (scale_x, scale_y), (new_h, new_w), (left, top) = letterbox_geometry((h, w), size)
    rows = np.minimum(((np.arange(new_h) + 0.5) / scale_y).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) / scale_x).astype(np.int64), w - 1)
    out = np.full(size, fill, mask.dtype)
    out[top : top + new_h, left : left + new_w] = mask[rows[:, None], cols[None, :]]
    return out


def scan_segment_split(spec: SegmentationSpec, split: str, check: bool = True) -> list[tuple[Path, Path]]:
    """(image, label source) pairs of `split`; with `check`, every mask is read and checked
    against its image (size, class indices) so bad data stops a run before it writes anything."""
    images = spec.images(split)
    if not images:
        raise FileNotFoundError(f"{spec.yaml_path or spec.root}: no images in {split} split")
    pairs = [(image, label_source(image)) for image in images]
    if check:
        for image, source in pairs:
            read_mask(source, image, spec)
    return pairs


def class_pixels(spec: SegmentationSpec, pairs: list[tuple[Path, Path]]) -> np.ndarray:
    """Pixels of each class over `pairs` (the ignore index left out)."""
    counts = np.zeros(spec.nc, np.int64)
    for image, source in pairs:
        mask = read_mask(source, image, spec).reshape(-1)
        counts += np.bincount(mask[mask != spec.ignore_index].astype(np.int64), minlength=spec.nc)[: spec.nc]
    return counts


def median_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """Median-frequency balancing (Eigen & Fergus; SegNet trains CamVid with it): median(freq) / freq(c),
    freq a class's share of the labelled pixels; classes that never occur get 0."""
    freq = counts / max(counts.sum(), 1)
    present = freq > 0
    weights = np.zeros(len(counts), np.float64)
    weights[present] = np.median(freq[present]) / freq[present]
    return weights
