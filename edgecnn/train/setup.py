"""Build the model a training run starts from: by name for the data's classes, optionally from weights."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from edgecnn.config import ConfigError
from edgecnn.train.keys import FITNESS

LOG = logging.getLogger("edgecnn")


def dataset_names(task: str, data: str) -> tuple[str, ...]:
    """Class (or training identity) names, without reading any image."""
    from edgecnn.data import open_task_dataset

    return open_task_dataset(data, task).names


def prepare_model(name: str, data: str, weights: str | None = None, seed: int = 0,
                  imgsz=None, backbone_weights: str | None = None) -> tuple[nn.Module, dict, set[str]]:
    """The model `name` sized for `data`'s classes, and the names of the parameters taken from `weights`.

    `weights` is an edgecnn checkpoint, an Ultralytics detection .pt (model= must be its
    architecture, e.g. yolov8n) or a torchvision state_dict file. A checkpoint of the same
    model for the same classes is rebuilt at its saved widths (so pruned ones load); otherwise
    tensors load where names and shapes match, which re-initializes only a head whose number of
    classes changed. `imgsz` sizes the models whose layout depends on it (LeNet, VGG). The
    initialization draws from `seed`. `backbone_weights` starts a segmentation model's backbone
    from a classification checkpoint (`models.segment.load_backbone`). Returns (model, meta,
    loaded parameter names).
    """
    import torch

    from edgecnn.models import FORMAT, build_model, get_entry, load_checkpoint, load_weights, read_checkpoint

    torch.manual_seed(seed)
    entry = get_entry(name)
    if entry.task not in FITNESS:
        raise ConfigError(f"model={name}: task {entry.task!r} cannot be trained here")
    names = dataset_names(entry.task, data)
    kwargs = {}
    if entry.accepts("num_classes") and entry.task != "embed":
        kwargs["num_classes"] = len(names)
    if entry.accepts("in_channels"):
        kwargs["in_channels"] = 3  # the loaders and the device backends feed RGB
    meta = {"names": list(names)}
    if backbone_weights is not None:
        if weights is not None or entry.task != "segment":
            raise ConfigError("backbone_weights= starts a segmentation model's backbone; give it without weights=")
        model = build_model(name, imgsz=imgsz, **kwargs)
        return model, meta, backbone_parameters(model, backbone_weights)
    if weights is None:
        return build_model(name, imgsz=imgsz, **kwargs), meta, set()
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights=: file not found: {path}")
    try:
        ckpt = read_checkpoint(path)  # an edgecnn checkpoint, or an Ultralytics .pt read without running it
    except ValueError:  # not a checkpoint (e.g. a torchvision state_dict): load_weights below reads it
        ckpt = None
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        saved = ckpt["model"]
        source = ckpt["meta"].get("source", {}).get("format")
        if source == "ultralytics" and saved["name"] != name:
            raise ConfigError(f"weights={path} holds an Ultralytics {saved['name']}; train it with model={saved['name']}")
        # normalization is part of what the weights learned (Ultralytics feeds RGB / 255 as it is)
        meta.update({k: ckpt["meta"][k] for k in ("mean", "std") if k in ckpt["meta"]})
        if saved["name"] == name and all(saved["kwargs"].get(k) == v for k, v in kwargs.items()):
            model, _ = load_checkpoint(path)
            LOG.info("starting from %s (same model and classes)", path)
            return model.train(), meta, {n for n, _ in model.named_parameters()}
        if "cls_width" in saved["kwargs"] and entry.accepts("cls_width"):
            kwargs["cls_width"] = saved["kwargs"]["cls_width"]  # keeps the hidden class layers loadable
    model = build_model(name, imgsz=imgsz, **kwargs)
    report = load_weights(model, path)
    loaded = set(report["loaded"])
    return model, meta, {n for n, _ in model.named_parameters() if n in loaded}


def backbone_parameters(model: nn.Module, path: str) -> set[str]:
    """Load a segmentation model's backbone from the classifier at `path`; the names of the
    parameters it set (they get `finetune_lr_scale`)."""
    from edgecnn.models.segment import load_backbone

    loaded = set(load_backbone(model, path)["loaded"])
    return {n for n, _ in model.named_parameters() if n in loaded}
