"""Optimizers with decay only on weights (not on norm layers or biases) and warmup + decay schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecnn.train.keys import OPTIMIZERS, SCHEDULERS
_NORM = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def parameter_groups(model: nn.Module, weight_decay: float, lr: float, scaled: set[str] = frozenset(), scale: float = 1.0):
    """Groups: {decayed weights, norm weights and biases} x {scaled, not}; `scaled` names get lr * scale."""
    groups: dict[tuple[bool, bool], list] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            decay = name != "bias" and not isinstance(module, _NORM) and param.ndim > 1
            groups.setdefault((decay, full in scaled), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": lr * (scale if is_scaled else 1.0)}
        for (decay, is_scaled), params in sorted(groups.items())
    ]


def build_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.937, weight_decay: float = 5e-4,
                    nesterov: bool = True, scaled: set[str] = frozenset(), scale: float = 1.0) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay, lr, scaled, scale)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=momentum)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def lr_factor(kind: str, epochs: int, steps_per_epoch: int, warmup_epochs: float, lrf: float,
              step_size: int, gamma: float):
    """Per-iteration multiplier of the initial lr: linear warmup, then the schedule down to `lrf`."""
    total = max(epochs * steps_per_epoch, 1)
    warmup = int(round(warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        if kind == "cosine":
            return lrf + (1 - lrf) * 0.5 * (1 + math.cos(math.pi * progress))
        if kind == "linear":
            return 1 - (1 - lrf) * progress
        if kind == "step":
            return gamma ** (step // max(step_size * steps_per_epoch, 1))
        if kind == "constant":
            return 1.0
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {kind!r}")

    return factor


def build_scheduler(optimizer, kind: str, epochs: int, steps_per_epoch: int, warmup_epochs: float = 1.0,
                    lrf: float = 0.01, step_size: int = 10, gamma: float = 0.1):
    """A LambdaLR stepped once per iteration (its state_dict resumes exactly)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(kind, epochs, steps_per_epoch, warmup_epochs, lrf, step_size, gamma))
