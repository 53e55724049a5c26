"""YOLO detection datasets as Ultralytics lays them out: `data.yaml`, images and `labels/*.txt`.

`data.yaml` keys: `path` (dataset root; relative to the yaml file's folder, default that folder),
`train`, `val` and optionally `test`: each a directory of images (searched recursively), a `.txt`
list of image paths (relative ones resolve against the list's folder), an image file, or a list of
those; `names` as a list or a `{id: name}` mapping with ids 0..nc-1; `nc` optional and checked.

The label file of `<root>/images/<rest>/x.jpg` is `<root>/labels/<rest>/x.txt` (the last
`/images/` becomes `/labels/`, as Ultralytics does); without `/images/` in the path the label sits
next to the image. One box per line, `class cx cy w h`, normalized to [0, 1]. A missing or empty
label file makes a background image; anything malformed is a ValueError naming `file:line`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
# Normalized coordinates written with limited precision may overshoot 1 by a rounding error.
COORD_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed `data.yaml`: where the images of each split are and what the classes are called."""

    root: Path
    names: tuple[str, ...]
    splits: dict[str, tuple[Path, ...]]
    yaml_path: Path | None = None

    @property
    def nc(self) -> int:
        return len(self.names)

    def sources(self, split: str) -> tuple[Path, ...]:
        if split not in self.splits:
            where = self.yaml_path or self.root
            raise ValueError(f"{where}: no '{split}' split (has {', '.join(self.splits) or 'none'})")
        return self.splits[split]

    def images(self, split: str) -> list[Path]:
        return image_files(self.sources(split))


@dataclass
class SplitScan:
    """The images of one split with their labels; unreadable images are left out and counted."""

    split: str
    images: list[Path] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)  # (N, 5) float32 [cls, cx, cy, w, h]
    shapes: list[tuple[int, int]] = field(default_factory=list)  # (height, width)
    corrupt: list[Path] = field(default_factory=list)
    missing_labels: int = 0

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[tuple[Path, np.ndarray]]:
        return iter(zip(self.images, self.labels))

    @property
    def backgrounds(self) -> int:
        return sum(len(lb) == 0 for lb in self.labels)


def parse_names(names, where: str) -> tuple[str, ...]:
    """`names` as a list, or as a mapping whose keys are exactly 0..nc-1."""
    if isinstance(names, (list, tuple)):
        out = tuple(str(n) for n in names)
    elif isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: 'names' keys must be class ids 0..nc-1, got {list(names)}") from None
        if ids != list(range(len(ids))):
            raise ValueError(f"{where}: 'names' ids must run 0..{len(ids) - 1} without gaps, got {ids}")
        out = tuple(str(names[k] if k in names else names[str(k)]) for k in ids)
    else:
        raise ValueError(f"{where}: 'names' must be a list or a mapping of id: name, got {type(names).__name__}")
    if not out:
        raise ValueError(f"{where}: 'names' is empty")
    return out


def load_data_yaml(path: str | os.PathLike) -> DatasetSpec:
    """Parse and check a `data.yaml`; the split paths must exist."""
    import yaml

    path = Path(path)
    if path.is_dir():
        path = path / "data.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"data.yaml not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ValueError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with path, train, val, names")
    for key in ("train", "val", "names"):
        if data.get(key) is None:
            raise ValueError(f"{path}: missing key '{key}'")
    names = parse_names(data["names"], f"{path}: names")
    if data.get("nc") is not None and int(data["nc"]) != len(names):
        raise ValueError(f"{path}: nc={data['nc']} but 'names' has {len(names)} entries")
    root = Path(data.get("path") or ".").expanduser()
    root = (root if root.is_absolute() else path.parent / root).resolve()
    splits = {}
    for split in SPLITS:
        entry = data.get(split)
        if entry is None:
            continue
        entries = entry if isinstance(entry, (list, tuple)) else [entry]
        sources = []
        for item in entries:
            source = Path(str(item)).expanduser()
            source = source if source.is_absolute() else root / source
            if not source.exists():
                raise FileNotFoundError(f"{path}: {split} path not found: {source}")
            sources.append(source)
        splits[split] = tuple(sources)
    return DatasetSpec(root=root, names=names, splits=splits, yaml_path=path.resolve())


def write_data_yaml(path: str | os.PathLike, names: list[str], train: str, val: str, root: str = ".") -> Path:
    """Write a `data.yaml` (atomically) with `names` as an id: name mapping."""
    import yaml

    from edgecnn.fileio import atomic_write_text

    data = {"path": root, "train": train, "val": val, "nc": len(names), "names": dict(enumerate(names))}
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def format_labels(labels: np.ndarray) -> str:
    """The text of a YOLO label file: one `class cx cy w h` line (normalized) per (N, 5) row."""
    return "".join(f"{int(c)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n" for c, cx, cy, bw, bh in labels)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_files(sources: tuple[Path, ...] | list[Path]) -> list[Path]:
    """Image paths from directories (recursive), `.txt` lists and image files, sorted, no repeats."""
    found: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found += [p for p in source.rglob("*") if is_image(p) and p.is_file()]
        elif source.suffix == ".txt":
            found += read_image_list(source)
        elif is_image(source):
            found.append(source)
        else:
            raise ValueError(f"{source}: not a directory, an image list (.txt) or an image")
    return sorted(set(found))


def read_image_list(path: Path) -> list[Path]:
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        image = Path(line).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if not is_image(image):
            raise ValueError(f"{path}:{lineno}: not an image path: '{line}'")
        out.append(image)
    return out


def label_path(image: str | os.PathLike) -> Path:
    """`…/images/…/x.jpg` → `…/labels/…/x.txt` (the last `images` folder), as Ultralytics does."""
    image = Path(image)
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_label_file(path: str | os.PathLike, nc: int) -> np.ndarray:
    """Boxes of one label file as (N, 5) float32 `[cls, cx, cy, w, h]`; missing file → no boxes.

    Repeated lines are dropped with a warning, as Ultralytics does: a doubled box would be a
    target twice in training.
    """
    path = Path(path)
    if not path.is_file():
        return np.zeros((0, 5), np.float32)
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        rows.append(parse_label_line(parts, nc, f"{path}:{lineno}"))
    labels = np.asarray(rows, np.float32).reshape(-1, 5)
    _, first = np.unique(labels, axis=0, return_index=True)
    if len(first) < len(labels):
        LOG.warning("%s: dropped %d repeated box(es)", path, len(labels) - len(first))
        labels = labels[np.sort(first)]
    return labels


def parse_label_line(parts: list[str], nc: int, where: str) -> list[float]:
    if len(parts) != 5:
        raise ValueError(f"{where}: expected 5 values 'class cx cy w h', got {len(parts)}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{where}: not a number in '{' '.join(parts)}'") from None
    cls, cx, cy, w, h = values
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: not a finite number in '{' '.join(parts)}'")
    if cls != int(cls) or not 0 <= cls < nc:
        raise ValueError(f"{where}: class id {parts[0]} is not one of 0..{nc - 1}")
    lo, hi = -COORD_TOLERANCE, 1 + COORD_TOLERANCE
    if not all(lo <= v <= hi for v in (cx, cy, w, h)):
        raise ValueError(f"{where}: coordinates must be normalized to [0, 1], got '{' '.join(parts[1:])}'")
    if w <= 0 or h <= 0:
        raise ValueError(f"{where}: box width and height must be > 0, got w={parts[3]} h={parts[4]}")
    return [cls] + [min(max(v, 0.0), 1.0) for v in (cx, cy, w, h)]


def image_shape(path: Path) -> tuple[int, int] | None:
    """(height, width) of a readable image, None when OpenCV cannot decode it."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None
    return image.shape[:2]


def scan_split(spec: DatasetSpec, split: str, check_images: bool = True, progress: bool = False) -> SplitScan:
    """Read every label of `split`; with `check_images`, decode each image and skip broken ones.

    Label errors raise; unreadable images are logged (count and the first few paths) and left out.
    """
    images = spec.images(split)
    if not images:
        raise FileNotFoundError(f"{spec.yaml_path or spec.root}: no images in {split} split {list(map(str, spec.sources(split)))}")
    scan = SplitScan(split)
    iterator = images
    if progress:
        from tqdm import tqdm

        iterator = tqdm(images, desc=f"scan {split}", unit="img", leave=False)
    for image in iterator:
        shape = image_shape(image) if check_images else (0, 0)
        if shape is None:
            scan.corrupt.append(image)
            continue
        labels_file = label_path(image)
        scan.missing_labels += not labels_file.is_file()
        scan.images.append(image)
        scan.labels.append(parse_label_file(labels_file, spec.nc))
        scan.shapes.append(tuple(shape))
    if scan.corrupt:
        first = ", ".join(map(str, scan.corrupt[:3]))
        LOG.warning("%s: skipped %d unreadable image(s), e.g. %s", split, len(scan.corrupt), first)
    return scan


def iter_samples(data: str | os.PathLike | DatasetSpec, split: str = "train") -> Iterator[tuple[Path, np.ndarray]]:
    """(image path, labels (N, 5) float32 [cls, cx, cy, w, h]) for each readable image of `split`."""
    spec = data if isinstance(data, DatasetSpec) else load_data_yaml(data)
    yield from scan_split(spec, split)
