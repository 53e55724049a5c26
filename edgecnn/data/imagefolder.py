"""ImageFolder classification datasets: `<root>/<split>/<class>/<image>`, as torchvision and Ultralytics.

Class names are the folder names of the first split found (`train`, then `val`, `test`), sorted;
their order gives the class ids. A split may lack a class but not add one, unless the splits hold
different classes by design (`shared_classes=False`: ReID identities, where each split's own
folders are its classes). Images outside a class
folder and empty class folders are errors naming the path; unreadable images are skipped and
counted, as in `edgecnn.data.yolo`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from edgecnn.data.yolo import SPLITS, image_shape, is_image

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFolderSpec:
    root: Path
    names: tuple[str, ...]
    splits: dict[str, Path]
    shared_classes: bool = True

    @property
    def nc(self) -> int:
        return len(self.names)

    def split_dir(self, split: str) -> Path:
        if split not in self.splits:
            raise FileNotFoundError(f"{self.root}: no '{split}' split folder (has {', '.join(self.splits) or 'none'})")
        return self.splits[split]


@dataclass
class FolderScan:
    split: str
    names: tuple[str, ...] = ()  # the classes `targets` index
    images: list[Path] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    shapes: list[tuple[int, int]] = field(default_factory=list)  # (height, width)
    corrupt: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[tuple[Path, int]]:
        return iter(zip(self.images, self.targets))

    def counts(self, nc: int) -> list[int]:
        out = [0] * nc
        for t in self.targets:
            out[t] += 1
        return out


def class_dirs(split_dir: Path) -> list[Path]:
    stray = sorted(p for p in split_dir.iterdir() if p.is_file() and is_image(p))
    if stray:
        raise ValueError(f"{stray[0]}: images must sit in one folder per class ({split_dir}/<class>/<image>)")
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_imagefolder(root: str | os.PathLike) -> bool:
    root = Path(root)
    return root.is_dir() and any((root / s).is_dir() for s in SPLITS)


def load_imagefolder(root: str | os.PathLike, shared_classes: bool = True) -> ImageFolderSpec:
    """Find the split folders under `root` and the class names."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageFolder dataset not found: {root}")
    splits = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if not splits:
        raise FileNotFoundError(f"{root}: no split folder (expected {', '.join(SPLITS)} with one folder per class)")
    first = next(iter(splits.values()))
    names = tuple(d.name for d in class_dirs(first))
    if not names:
        raise ValueError(f"{first}: no class folders")
    for split_dir in splits.values() if shared_classes else ():
        extra = [d for d in class_dirs(split_dir) if d.name not in names]
        if extra:
            raise ValueError(f"{extra[0]}: class '{extra[0].name}' is not in {first} (classes: {', '.join(names)})")
    return ImageFolderSpec(root=root.resolve(), names=names, splits=splits, shared_classes=shared_classes)


def scan_folder(spec: ImageFolderSpec, split: str, check_images: bool = True) -> FolderScan:
    """Every image of `split` with its class id; with `check_images` unreadable ones are skipped."""
    split_dir = spec.split_dir(split)
    folders = class_dirs(split_dir)
    names = spec.names if spec.shared_classes else tuple(d.name for d in folders)
    scan = FolderScan(split, names)
    for class_dir in folders:
        images = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_image(p))
        if not images:
            raise ValueError(f"{class_dir}: class folder has no images")
        target = names.index(class_dir.name)
        for image in images:
            shape = image_shape(image) if check_images else (0, 0)
            if shape is None:
                scan.corrupt.append(image)
                continue
            scan.images.append(image)
            scan.targets.append(target)
            scan.shapes.append(tuple(shape))
    if scan.corrupt:
        LOG.warning("%s: skipped %d unreadable image(s), e.g. %s", split, len(scan.corrupt), ", ".join(map(str, scan.corrupt[:3])))
    if not scan.images:
        raise ValueError(f"{split_dir}: no readable images")
    return scan
