"""Model registry: names map to factories (timm-style), `build_model` builds by name.

A built model carries `task` ("classify" | "detect" | "embed" | "segment") and `arch` ({"name", "kwargs"}),
which is what a checkpoint stores to rebuild it.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from edgecnn.runtime.preprocess import input_hw

TASKS = ("classify", "detect", "embed", "segment")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    factory: Callable[..., nn.Module]
    imgsz: tuple[int, int]  # the input (h, w) the model is meant for, e.g. for `edgecnn summary`

    def accepts(self, key: str) -> bool:
        return key in inspect.signature(self.factory).parameters


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, task: str, imgsz: int | tuple[int, int] = 224
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `factory(**kwargs) -> nn.Module` under `name` for `task`, with its
    usual input size `imgsz` (an int for square inputs, or (h, w))."""
    if task not in TASKS:
        raise ValueError(f"register_model('{name}'): task must be one of {TASKS}, got '{task}'")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        size = input_hw(imgsz)
        _REGISTRY[name] = ModelEntry(name, task, factory, size)
        return factory

    return decorator


def list_models(task: str | None = None) -> list[str]:
    """Registered names, sorted; only those for `task` when given."""
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; an unknown name is a ValueError with the closest names."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown model '{name}'{hint} (known: {', '.join(list_models())})")
    return _REGISTRY[name]


def build_model(name: str, imgsz: int | Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keywords go to its factory (`num_classes`, `in_channels`, …).

    `imgsz` (N or (h, w); the shorter side counts) reaches only the models whose layout depends
    on the input size (LeNet's and VGG's classifier, ResNet's stem); the others run at any size.
    """
    entry = get_entry(name)
    if imgsz is not None and entry.accepts("imgsz"):
        kwargs["imgsz"] = min(input_hw(imgsz))
    params = inspect.signature(entry.factory).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(f"model '{name}' does not take {', '.join(unknown)}; it takes: {', '.join(params)}")
    model = entry.factory(**kwargs)
    model.task = entry.task
    model.arch = {"name": name, "kwargs": dict(kwargs)}
    return model
