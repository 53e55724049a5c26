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


class C2f(nn.Module):
    """YOLOv8's CSP block: two 1x1 branches, a chain of n blocks of two 3x3 convs, a 1x1 fusing
    the concatenation of the branches and every block's output.

    Two separate 1x1 convs replace YOLOv8's one conv split in half: the same function, but
    channel pruning can shrink each branch on its own. With `shortcut`, block k runs on the
    running sum cv1 + r_1 + ... + r_(k-1) as in YOLOv8, and the concatenation takes each block's
    residual r_k instead of the sum: the fusing conv is linear in its inputs, so the functions are
    the same, while no Add feeds the Concat (onnx2tf 1.29 computes such an Add in NCHW and wraps
    the Concat in transposes).
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False):
        super().__init__()
        hidden = c_out // 2
        self.cv0 = ConvBNReLU(c_in, hidden, 1)
        self.cv1 = ConvBNReLU(c_in, hidden, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(ConvBNReLU(hidden, hidden, 3), ConvBNReLU(hidden, hidden, 3)) for _ in range(n)
        )
        self.cv2 = ConvBNReLU((2 + n) * hidden, c_out, 1)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = [self.cv0(x), self.cv1(x)]
        z = ys[-1]
        for i, block in enumerate(self.blocks):
            ys.append(block(z))
            if i + 1 < len(self.blocks):
                z = z + ys[-1] if self.shortcut else ys[-1]
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
