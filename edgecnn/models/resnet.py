"""ResNet-18/34 (He et al., 2015) from torchvision: basic blocks, BatchNorm, ReLU.

For small inputs (imgsz < 96, e.g. CIFAR's 32 px) the stem is a 3x3 stride-1 conv without the
max-pool, as in the paper's CIFAR experiments; otherwise the ImageNet 7x7/2 stem + pool, whose
weights then match torchvision's files.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet

from edgecnn.models.registry import register_model

SMALL_INPUT = 96


def _resnet(factory, num_classes: int, in_channels: int, imgsz: int) -> resnet.ResNet:
    model = factory(weights=None, num_classes=num_classes)
    if imgsz < SMALL_INPUT:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


@register_model("resnet18", task="classify")
def resnet18(num_classes: int = 1000, in_channels: int = 3, imgsz: int = 224) -> resnet.ResNet:
    return _resnet(resnet.resnet18, num_classes, in_channels, imgsz)


@register_model("resnet34", task="classify")
def resnet34(num_classes: int = 1000, in_channels: int = 3, imgsz: int = 224) -> resnet.ResNet:
    return _resnet(resnet.resnet34, num_classes, in_channels, imgsz)
