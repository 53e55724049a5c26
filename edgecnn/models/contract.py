"""The model contract: what every registered model states about itself, and the optional hooks a
model may define for the stages that handle it.

`ModelConfig` is the record next to each model in the registry (timm's `default_cfgs`): filled by
`register_model(name, task, imgsz, **fields)`, with defaults that fit a classifier. The hooks are
`typing.Protocol`s; the stages ask `isinstance(model, Hook)` instead of probing attribute names.

| hook | who calls it | what it does |
|---|---|---|
| `Strided.strides` | the detect task, checkpoints | the output strides, e.g. (8, 16, 32) |
| `DeclaresOutputLayers.output_layers()` | pruning | layers whose widths the outputs fix; without it they are traced |
| `Prunable.make_prunable()` | pruning | turn into an equivalent form torch-pruning can follow (records it in `arch`) |
| `Exportable.for_export()` | export | an equivalent copy that converts better to ONNX/TFLite |
| `Freezable.freeze_prefixes(freeze)` | the trainer's `freeze=` | parameter-name prefixes `'backbone'` or N selects |

`tests/test_model_contract.py` builds every registered model and checks it against its record
and these hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

TASKS = ("classify", "detect", "embed", "segment")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRUNE_KEEP = ("traced", "declared")


@dataclass(frozen=True)
class ModelConfig:
    """What a model is, stated once next to it.

    task: "classify" | "detect" | "embed" | "segment". imgsz: the input (h, w) the model is meant for.
    mean, std: the RGB normalization its weights expect (inputs are RGB / 255, then (x - mean) / std);
    the trainer records them in the checkpoint. strides: a detector's output strides (empty for
    the others). prune_keep: which layers stay out of pruning: "traced" (those that produce the
    outputs, found from the autograd graph) or "declared" (the model's `output_layers()`).
    """

    task: str
    imgsz: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    strides: tuple[int, ...] = ()
    prune_keep: str = "traced"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got '{self.task}'")
        if self.prune_keep not in PRUNE_KEEP:
            raise ValueError(f"prune_keep must be one of {PRUNE_KEEP}, got '{self.prune_keep}'")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {self.mean} and {self.std}")


@runtime_checkable
class Strided(Protocol):
    """A model whose outputs are laid out on grids of these strides (detectors)."""

    strides: tuple[int, ...]


@runtime_checkable
class DeclaresOutputLayers(Protocol):
    def output_layers(self) -> list[nn.Module]:
        """The layers whose output widths the model's outputs fix (pruning leaves them)."""


@runtime_checkable
class Prunable(Protocol):
    def make_prunable(self) -> None:
        """Change, in place, into an equivalent form torch-pruning can follow; record it in `arch`."""


@runtime_checkable
class Exportable(Protocol):
    def for_export(self) -> nn.Module:
        """An equivalent copy in the form that converts best; the checkpoint keeps the original."""


@runtime_checkable
class Freezable(Protocol):
    def freeze_prefixes(self, freeze: str | int) -> list[str]:
        """Parameter-name prefixes that `freeze` ('backbone' or a number of layers) selects."""


HOOKS = (Strided, DeclaresOutputLayers, Prunable, Exportable, Freezable)
