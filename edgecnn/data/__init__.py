"""Datasets: YOLO `data.yaml`, ImageFolder, MOTChallenge; transforms, loaders, synthetic data, calibration sets.

`open_dataset(path)` is the one place that decides what a dataset path is: a `data.yaml` (or a
directory holding one) is a YOLO detection set, which wins over folders that look like an
ImageFolder; otherwise a directory with split folders (`train/`, `val/`, …) is an ImageFolder.
"""

from __future__ import annotations

import os
from pathlib import Path


def dataset_format(path: str | os.PathLike) -> str | None:
    """"yolo", "imagefolder", or None when `path` is neither."""
    from edgecnn.data.imagefolder import is_imagefolder

    path = Path(path)
    if (path.suffix in (".yaml", ".yml") and path.is_file()) or (path / "data.yaml").is_file():
        return "yolo"
    return "imagefolder" if is_imagefolder(path) else None


def open_dataset(path: str | os.PathLike, shared_classes: bool = True):
    """The dataset at `path`: a `yolo.DatasetSpec` or an `imagefolder.ImageFolderSpec`
    (`shared_classes=False`: each split holds its own identities, as ReID sets do)."""
    kind = dataset_format(path)
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
    """`open_dataset` for training `task`: detect needs a data.yaml, classify and embed an ImageFolder."""
    from edgecnn.data.yolo import DatasetSpec

    spec = open_dataset(path, shared_classes=task != "embed")
    if (task == "detect") != isinstance(spec, DatasetSpec):
        need = "a YOLO data.yaml" if task == "detect" else "an ImageFolder root (<split>/<class>/)"
        raise ValueError(f"{path}: the {task} task needs {need}")
    return spec
