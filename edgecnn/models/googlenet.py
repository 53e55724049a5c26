"""GoogLeNet / Inception v1 (Szegedy et al., 2014) from torchvision, with BatchNorm as
torchvision builds it, and the paper's two auxiliary classifiers for training.

In train mode the model returns `(logits, aux2, aux1)`; the classify task adds the auxiliary
losses at 0.3 weight, as the paper does. In eval mode (validation, export) it returns the logits
only. Pruning drops the auxiliary heads (`make_prunable`): they serve training from scratch, and
the pruner traces the eval graph, where they do not run.

At 96 px and up the stem is torchvision's (7x7 stride-2 conv), so its ImageNet weight files
load. Below that (CIFAR's 32 px) the stem is a 3x3 stride-1 conv: the network then halves its
input four times, and a 32 px image reaches the auxiliary heads at their own 4x4.
"""

from __future__ import annotations

import copy
import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.models.registry import register_model
from edgecnn.models.resnet import SMALL_INPUT

# `torchvision.models.googlenet` is the factory function; the module holds the classes.
tv_googlenet = importlib.import_module("torchvision.models.googlenet")


class GoogLeNet(tv_googlenet.GoogLeNet):
    """torchvision's GoogLeNet with a small-input stem and auxiliary heads that can be dropped."""

    def __init__(self, num_classes: int, in_channels: int, imgsz: int, aux_logits: bool, dropout: float):
        super().__init__(num_classes=num_classes, aux_logits=aux_logits, init_weights=True, dropout=dropout)
        if imgsz < SMALL_INPUT:
            self.conv1 = tv_googlenet.BasicConv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
        elif in_channels != 3:
            self.conv1 = tv_googlenet.BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (B, classes); in train mode with auxiliary heads (logits, aux2, aux1)."""
        logits, aux2, aux1 = self._forward(x)
        return (logits, aux2, aux1) if self.training and self.aux_logits else logits

    def for_export(self) -> GoogLeNet:
        """A copy whose stride-2 ceil-mode max-pools pad with zeros (`ZeroPadMaxPool`): onnx2tf
        pads them with -inf, which gave the int8 TFLite a 1e36 activation scale that XNNPACK
        refuses. Their inputs come out of ReLUs, so zeros pool the same."""
        model = copy.deepcopy(self)
        for name in ("maxpool1", "maxpool2", "maxpool3", "maxpool4"):
            setattr(model, name, ZeroPadMaxPool(getattr(model, name)))
        return model

    def make_prunable(self) -> None:
        """Drop the auxiliary heads (and say so in `arch`, so the checkpoint rebuilds without them)."""
        self.aux_logits, self.aux1, self.aux2 = False, None, None
        if hasattr(self, "arch"):
            self.arch["kwargs"]["aux_logits"] = False


class ZeroPadMaxPool(nn.Module):
    """`MaxPool2d(ceil_mode=True)` for non-negative inputs: the edge windows that ceil mode adds
    are completed with zeros, then pooled without ceil mode."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.kernel, self.stride, self.padding = pool.kernel_size, pool.stride, pool.padding

    def extra(self, n: int) -> int:
        """Zeros to add after `n` pixels so that floor-mode pooling gives ceil mode's output size."""
        k, s, p = self.kernel, self.stride, self.padding
        out = math.ceil((n + 2 * p - k) / s) + 1
        if (out - 1) * s >= n + p:  # PyTorch's rule: the last window starts inside the input
            out -= 1
        return max((out - 1) * s + k - (n + 2 * p), 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad = (self.padding, self.padding + self.extra(w), self.padding, self.padding + self.extra(h))
        return F.max_pool2d(F.pad(x, pad) if any(pad) else x, self.kernel, self.stride)


@register_model("googlenet", task="classify")
def googlenet(num_classes: int = 1000, in_channels: int = 3, imgsz: int = 224, aux_logits: bool = True,
              dropout: float = 0.2) -> GoogLeNet:
    return GoogLeNet(num_classes, in_channels, imgsz, aux_logits, dropout)
