"""Reshape a freshly built model's layers to the widths stored in a state_dict.

Structured pruning (torch-pruning) only changes channel counts, so rebuilding the architecture
by name and resizing each layer to the saved tensors restores a pruned model without the pruner.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


def adapt_to_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Resize every layer whose tensors differ in shape from `state_dict`; return their names."""
    resized = []
    for prefix, module in model.named_modules():
        old_shapes = {}
        for group in (module._parameters, module._buffers):
            for name, tensor in group.items():
                key = f"{prefix}.{name}" if prefix else name
                if tensor is None or key not in state_dict or state_dict[key].shape == tensor.shape:
                    continue
                old_shapes[name] = tensor.shape
                new = torch.empty(state_dict[key].shape, dtype=tensor.dtype, device=tensor.device)
                group[name] = nn.Parameter(new, tensor.requires_grad) if group is module._parameters else new
        if old_shapes:
            _update_widths(module, prefix or type(module).__name__, old_shapes)
            resized.append(prefix)
    return resized


def _update_widths(module: nn.Module, where: str, old_shapes: dict[str, torch.Size]) -> None:
    """Make the layer's width attributes agree with its resized tensors."""
    if isinstance(module, _ConvNd) and not module.transposed:
        out_ch, in_per_group = module.weight.shape[:2]
        if module.groups > 1 and module.groups == module.in_channels:  # depthwise: groups follow width
            multiplier = module.out_channels // module.groups
            module.groups = out_ch // multiplier
        module.out_channels, module.in_channels = out_ch, in_per_group * module.groups
    elif isinstance(module, _BatchNorm):
        module.num_features = (module.weight if module.weight is not None else module.running_mean).shape[0]
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    else:
        raise ValueError(
            f"cannot resize layer '{where}' ({type(module).__name__}) to the saved shapes "
            f"(changed: {', '.join(old_shapes)}); only Conv, BatchNorm and Linear widths may differ"
        )
