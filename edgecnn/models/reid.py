"""A small person/vehicle ReID embedder for DeepSORT: 128x64 crops → L2-normalized 128-d vectors.

Depthwise-separable blocks with BN + ReLU keep it ~0.3M parameters and int8-friendly for a Pi.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.models.layers import ConvBNReLU
from edgecnn.models.registry import register_model


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, residual when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.dw = ConvBNReLU(c_in, c_in, 3, stride, groups=c_in)
        self.pw = ConvBNReLU(c_in, c_out, 1, act=stride != 1 or c_in != c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(x + y) if self.residual else y


class ReIDNet(nn.Module):
    task = "embed"

    def __init__(self, in_channels: int = 3, dim: int = 128, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers = [ConvBNReLU(in_channels, widths[0], 3, 2), ConvBNReLU(widths[0], widths[0], 3)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [SeparableBlock(c_in, c_out, 2), SeparableBlock(c_out, c_out), SeparableBlock(c_out, c_out)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Linear(widths[-1], dim, bias=False)
        # BNNeck (Luo et al. 2019): pooled ReLU features share one large positive component, so
        # without centring every crop starts at nearly the same unit vector and the triplet loss
        # stalls at its margin; batch norm centres the embedding before it is normalized.
        self.neck = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.neck(self.embed(self.pool(self.features(x)).flatten(1))), dim=1)


@register_model("reid", task="embed", imgsz=(128, 64))
def reid(in_channels: int = 3, dim: int = 128) -> ReIDNet:
    """Input: crops resized to 128x64 (h x w); any size that survives four halvings works."""
    return ReIDNet(in_channels, dim)
