"""What a deployment engineer wants to know about a model before it reaches a device.

Per leaf layer: output shape, parameters, activation memory and multiply-accumulates; totals:
parameters, weight size in fp32 and int8, peak activation memory per image and GMACs.
Runs on the meta device when the model is there, so even VGG-16 at 224 px costs no compute.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

MIB = 1024 * 1024
NOT_COUNTED = (
    "MACs count Conv2d (groups included) and Linear layers; BatchNorm (folded into the conv at "
    "export), activations, pooling, upsampling, add, concat and softmax are not counted. "
    "Activation memory is fp32 (int8 is a quarter); the peak counts the tensors alive at once, "
    "with BatchNorm folded into its conv as after export."
)


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: list[int]
    params: int
    activation_bytes: int
    macs: int


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call: every output element of a conv/linear is a dot product."""
    if isinstance(module, _ConvNd):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


class _Liveness(TorchDispatchMode):
    """Follows every tensor computed from the input through all ops (modules and functional
    cat/add/view alike) to find the peak of memory held by activations that are still needed."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.step = 0
        self.keys = {id(image): 0}  # id of a live tensor -> its buffer (views share their base's)
        self.held = [image]  # keeps ids unique while tracing
        self.spans = [[0, 0, image.numel() * 4]]  # per buffer: first step, last step, fp32 bytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.step += 1
        used = [self.keys[id(t)] for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and id(t) in self.keys]
        if not used:  # weights and constants, not activations
            return out
        for key in used:
            self.spans[key][1] = self.step
        returns = func._schema.returns
        folded = "batch_norm" in func.__name__  # export folds BN into the conv: no buffer of its own
        for i, t in enumerate(t for t in tree_leaves(out) if isinstance(t, torch.Tensor)):
            if (i < len(returns) and returns[i].alias_info is not None) or (folded and i == 0):
                self.keys[id(t)] = used[0]  # a view or in-place result: same memory as its input
            else:
                self.keys[id(t)] = len(self.spans)
                self.spans.append([self.step, self.step, t.numel() * 4])
            self.held.append(t)
        return out

    def peak_bytes(self, outputs) -> int:
        for t in tree_leaves(outputs):
            if isinstance(t, torch.Tensor) and id(t) in self.keys:
                self.spans[self.keys[id(t)]][1] = self.step
        timeline = [0] * (self.step + 2)
        for first, last, size in self.spans:
            timeline[first] += size
            timeline[last + 1] -= size
        peak = running = 0
        for delta in timeline:
            running += delta
            peak = max(peak, running)
        return peak


def int8_weight_bytes(model: nn.Module) -> int:
    """Size after int8 conversion: conv/linear weights at 1 byte plus an int32 bias per output
    channel (BatchNorm folds into it); any other parameter stays 4 bytes."""
    total = 0
    for module in model.modules():
        if isinstance(module, (_ConvNd, nn.Linear)):
            total += module.weight.numel() + module.weight.shape[0] * 4
        elif not isinstance(module, nn.modules.batchnorm._BatchNorm):
            total += sum(p.numel() * 4 for p in module.parameters(recurse=False))
    return total


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> dict:
    """Trace one image of `input_shape` (C, H, W) through `model` in eval mode.

    Returns totals (params, macs, gmacs, weight_mb_fp32, weight_mb_int8, peak_activation_mb,
    peak_activation_mb_int8) and `layers`, one row per leaf-layer call.
    """
    device = next(model.parameters()).device
    rows: list[LayerRow] = []
    seen: set[int] = set()

    def hook(module: nn.Module, _inputs, output) -> None:
        tensors = [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]
        params = 0 if id(module) in seen else sum(p.numel() for p in module.parameters(recurse=False))
        seen.add(id(module))
        shape = list(tensors[0].shape) if len(tensors) == 1 else [list(t.shape) for t in tensors]
        rows.append(LayerRow(names[module], type(module).__name__, shape, params,
                             sum(t.numel() * 4 for t in tensors), sum(layer_macs(module, t) for t in tensors)))

    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    image = torch.zeros((1, *input_shape), device=device)
    try:
        model.eval()
        with torch.no_grad(), _Liveness(image) as liveness:
            outputs = model(image)
        peak = liveness.peak_bytes(outputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    macs = sum(r.macs for r in rows)
    return {
        "params": params,
        "macs": macs,
        "gmacs": macs / 1e9,
        "weight_mb_fp32": params * 4 / MIB,
        "weight_mb_int8": int8_weight_bytes(model) / MIB,
        "peak_activation_mb": peak / MIB,
        "peak_activation_mb_int8": peak / 4 / MIB,
        "not_counted": NOT_COUNTED,
        "layers": [asdict(r) for r in rows],
    }
