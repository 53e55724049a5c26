"""Datasets: YOLO `data.yaml`, segmentation masks, ImageFolder, MOTChallenge; transforms, loaders,
synthetic data, calibration sets.

`open_dataset(path)` is the one place that decides what a dataset path is: a `data.yaml` (or a
directory holding one) is a YOLO detection set, or a segmentation set when it says `task: segment`;
it wins over folders that look like an ImageFolder; otherwise a directory with split folders
(`train/`, `val/`, …) is an ImageFolder.
"""

from __future__ import annotations

import os
from pathlib import Path


def dataset_format(path: str | os.PathLike) -> str | None:
    """"yolo", "segment", "imagefolder", or None when `path` is none of them."""
    from edgecnn.data.imagefolder import is_imagefolder
    from edgecnn.data.segment import read_task

    path = Path(path)
    if (path.suffix in (".yaml", ".yml") and path.is_file()) or (path / "data.yaml").is_file():
        return "segment" if read_task(path) == "segment" else "yolo"
    return "imagefolder" if is_imagefolder(path) else None


def open_dataset(path: str | os.PathLike, shared_classes: bool = True):
    """The dataset at `path`: a `yolo.DatasetSpec`, a `segment.SegmentationSpec` or an
    `imagefolder.ImageFolderSpec` (`shared_classes=False`: each split holds its own identities,
    as ReID sets do)."""
    kind = dataset_format(path)
    if kind == "segment":
        from edgecnn.data.segment import load_segment_yaml

        return load_segment_yaml(path)
    if kind == "yolo":
        from edgecnn.data.yolo import load_data_yaml

        return load_data_yaml(path)
    if kind == "imagefolder":
        from edgecnn.data.imagefolder import load_imagefolder

        return load_imagefolder(path, shared_classes=shared_classes)
    if not Path(path).exists():
        raise FileNotFoundError(f"dataset not found: {path} (a data.yaml or an ImageFolder root)")
    raise FileNotFoundError(f"{path}: neither a data.yaml nor an ImageFolder root (no data.yaml, no train/ or val/ folder)")


def open_task_dataset(path: str | os.PathLike, task: str):
    """`open_dataset` for training `task`: detect needs a data.yaml, segment one with `task: segment`,
    classify and embed an ImageFolder."""
    from edgecnn.data.segment import SegmentationSpec
    from edgecnn.data.yolo import DatasetSpec

    spec = open_dataset(path, shared_classes=task != "embed")
    kind = "segment" if isinstance(spec, SegmentationSpec) else "detect" if isinstance(spec, DatasetSpec) else "folder"
    if kind != {"detect": "detect", "segment": "segment"}.get(task, "folder"):
        need = {"detect": "a YOLO data.yaml", "segment": "a data.yaml with 'task: segment' (images/ and masks/)"}
        raise ValueError(f"{path}: the {task} task needs {need.get(task, 'an ImageFolder root (<split>/<class>/)')}")
    return spec
