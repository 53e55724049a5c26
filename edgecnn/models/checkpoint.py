"""Checkpoints: save atomically, load with `weights_only=True`, rebuild by name at saved widths.

`torch.save` of plain Python types and tensors only, so `torch.load(weights_only=True)` reads it
and loading never unpickles code:

    {"format": "edgecnn-checkpoint/1",
     "model": {"name": "yolo-n", "kwargs": {"num_classes": 5}},
     "state_dict": {...},           # the weights to use (the EMA's when training used EMA)
     "meta": {"task": "detect" | "classify" | "embed", "names": [...], "imgsz": 320,
              "mean": [r, g, b], "std": [r, g, b], "strides": [8, 16, 32], "run_hash": "..."},
     "train_state": {...},          # optimizer, scheduler, EMA, epoch, RNG: last.pt only
     ...extra}                      # e.g. "prune" (prune.json's before/after/config), "quantization"

`load_checkpoint` rebuilds the model by name and adapts every layer's width to the saved weights,
so a pruned checkpoint loads without torch-pruning. An Ultralytics detection `.pt` is accepted
wherever a checkpoint is (`ultralytics_checkpoint`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.fileio import atomic_path
from edgecnn.models.adapt import adapt_to_state_dict
from edgecnn.models.contract import Strided
from edgecnn.models.registry import build_model

FORMAT = "edgecnn-checkpoint/1"
LOG = logging.getLogger("edgecnn")
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DataParallel/DDP or torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any], **extra: Any) -> Path:
    """Write `model` (built by `build_model`) with `meta` and `extra` top-level entries atomically.

    `meta` gets `task` (and `strides` for detectors) from the model when missing. Every value must
    be a plain type or a tensor (checked before writing, naming the offending entry).
    """
    model = unwrap(model)
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("save_checkpoint: the model has no `arch`; build it with edgecnn.models.build_model")
    meta = {"task": model.task, **meta}
    if isinstance(model, Strided):
        meta.setdefault("strides", list(model.strides))
    ckpt = {
        "format": FORMAT,
        "model": {"name": arch["name"], "kwargs": dict(arch["kwargs"])},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
        **extra,
    }
    _check_plain(ckpt, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def _check_plain(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} must be str or int")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__name__}; checkpoints hold plain types and tensors only")


def _torch_load(path: str | os.PathLike, map_location: Any, expected: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{expected} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises pickle, zip, EOF or runtime errors for foreign files
        raise ValueError(f"{path} is not a readable {expected} (a torch.save file): {type(err).__name__}: {err}") from None


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict, checked for the edgecnn format (e.g. to resume from `train_state`).

    An Ultralytics detection .pt is read without running it and given as the matching model's
    checkpoint (`ultralytics_checkpoint.read_ultralytics`)."""
    try:
        ckpt = _torch_load(path, map_location, "edgecnn checkpoint")
    except ValueError as err:  # not loadable with weights_only: maybe an Ultralytics pickle of modules
        from edgecnn.models.ultralytics_checkpoint import read_ultralytics

        return read_ultralytics(path, reason=err)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not an edgecnn checkpoint: expected format '{FORMAT}', found {found!r}")
    for key in ("model", "state_dict", "meta"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint has no '{key}' entry")
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the saved model at its saved widths (pruned or not) with its weights, in eval mode."""
    ckpt = read_checkpoint(path, map_location)
    model = build_model(ckpt["model"]["name"], **ckpt["model"]["kwargs"])
    state_dict = ckpt["state_dict"]
    adapt_to_state_dict(model, state_dict)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit model '{ckpt['model']['name']}': {err}") from None
    return model.to(map_location).eval(), ckpt["meta"]


def load_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Load a local state_dict (e.g. torchvision ImageNet weights) wherever names and shapes match.

    Tensors of another shape (a head for another number of classes, a stem for other inputs)
    keep their fresh initialization. Models may set `pretrained_prefix`, the name under which
    the torchvision network sits (detectors with torchvision backbones). Returns and logs what
    was loaded, skipped (shape differs or no such layer) and left missing.
    """
    try:
        state = _torch_load(path, "cpu", "weights file")
    except ValueError as err:  # maybe an Ultralytics .pt (a pickle of modules): read without running it
        from edgecnn.models.ultralytics_checkpoint import read_ultralytics

        state = read_ultralytics(path, reason=err)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state_dict (a dict of tensors)")
    prefix = getattr(model, "pretrained_prefix", "")
    own = model.state_dict()
    loaded, skipped = {}, []
    for key, tensor in state.items():
        target = prefix + key
        if target not in own:
            skipped.append(f"{key} (no such layer)")
        elif own[target].shape != tensor.shape:
            skipped.append(f"{key} (shape {tuple(tensor.shape)} vs {tuple(own[target].shape)})")
        else:
            loaded[target] = tensor
    if not loaded:
        raise ValueError(f"{path}: no tensor matches the model's layers by name and shape")
    model.load_state_dict(loaded, strict=False)
    missing = [k for k in own if k not in loaded]
    LOG.info("loaded %d tensors from %s; skipped %d, left %d at their initialization", len(loaded), path, len(skipped), len(missing))
    for line in skipped:
        LOG.info("  skipped %s", line)
    return {"loaded": list(loaded), "skipped": skipped, "missing": missing}
