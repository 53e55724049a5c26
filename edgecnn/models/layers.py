"""Building blocks shared by the detector and the ReID embedder: Conv + BN + ReLU and friends.

ReLU everywhere: int8 XNNPACK and TensorRT fold it into the convolution's requantization clamp
for free, while SiLU/hardswish need extra ops or lookup tables and their negative tail widens
the int8 range of every activation they produce.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of `divisor` (SIMD-friendly widths)."""
    return max(divisor, int(math.ceil(channels / divisor) * divisor))


class ConvBNReLU(nn.Module):
    """Conv2d (no bias, BN follows) + BatchNorm2d + optional ReLU; 'same' padding for odd k."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 ConvBNReLU with an optional residual add (YOLOv8's bottleneck, expansion 1)."""

    def __init__(self, channels: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = ConvBNReLU(channels, channels, 3)
        self.cv2 = ConvBNReLU(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """CSP block with two branches and a chain of bottlenecks whose outputs are all concatenated.

    The two branches are separate 1x1 convs instead of one conv split in half (as YOLOv8 does):
    the same function, but channel pruning can shrink each branch independently.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False):
        super().__init__()
        hidden = c_out // 2
        self.cv0 = ConvBNReLU(c_in, hidden, 1)
        self.cv1 = ConvBNReLU(c_in, hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(hidden, shortcut) for _ in range(n))
        self.cv2 = ConvBNReLU((2 + n) * hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = [self.cv0(x), self.cv1(x)]
        for block in self.blocks:
            ys.append(block(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools (receptive fields 5, 9, 13)."""

    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNReLU(c_in, hidden, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.cv2 = ConvBNReLU(hidden * 4, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))
