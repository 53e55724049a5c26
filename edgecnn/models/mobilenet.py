"""MobileNetV2 and V3 (small, large) from torchvision, built without weights (never downloaded).

They run at any input size down to 32 px; start from ImageNet with `load_weights(model, file)`.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenetv2, mobilenetv3

from edgecnn.models.registry import register_model


def _first_conv(model: nn.Module, in_channels: int) -> nn.Module:
    if in_channels != 3:
        old = model.features[0][0]
        model.features[0][0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    return model


@register_model("mobilenet_v2", task="classify")
def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2) -> nn.Module:
    return _first_conv(mobilenetv2.mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width_mult, dropout=dropout), in_channels)


@register_model("mobilenet_v3_small", task="classify")
def mobilenet_v3_small(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> nn.Module:
    return _first_conv(mobilenetv3.mobilenet_v3_small(weights=None, num_classes=num_classes, dropout=dropout), in_channels)


@register_model("mobilenet_v3_large", task="classify")
def mobilenet_v3_large(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> nn.Module:
    return _first_conv(mobilenetv3.mobilenet_v3_large(weights=None, num_classes=num_classes, dropout=dropout), in_channels)
