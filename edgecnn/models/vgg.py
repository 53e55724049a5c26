"""VGG-11/16 (Simonyan & Zisserman, 2014), BatchNorm optional (off as in the paper), torchvision layers.

At 224 px the classifier is the canon's (7x7x512 → 4096 → 4096 → classes, dropout 0.5) and
the layer names are torchvision's, so its ImageNet weight files load as they are. Below 224 the
features shrink to (imgsz/32)^2 and the 4096-wide layers become 512 wide (the usual CIFAR VGG),
instead of blowing a 1x1 map up to 7x7 for 120M mostly redundant parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import vgg

from edgecnn.models.registry import register_model


class VGG(nn.Module):
    """torchvision's VGG with the classifier sized for the input (its own always builds 4096x25088)."""

    def __init__(self, config: str, num_classes: int, in_channels: int, imgsz: int, batch_norm: bool, dropout: float):
        super().__init__()
        if imgsz < 32:
            raise ValueError(f"VGG halves its input five times; imgsz must be >= 32, got {imgsz}")
        self.features = vgg.make_layers(vgg.cfgs[config], batch_norm=batch_norm)
        if in_channels != 3:
            self.features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
        side = min(7, imgsz // 32)
        hidden = 4096 if side == 7 else 512
        self.avgpool = nn.AdaptiveAvgPool2d(side)
        self.classifier = nn.Sequential(
            nn.Linear(512 * side * side, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_model("vgg11", task="classify")
def vgg11(num_classes: int = 1000, in_channels: int = 3, imgsz: int = 224, batch_norm: bool = False, dropout: float = 0.5) -> VGG:
    return VGG("A", num_classes, in_channels, imgsz, batch_norm, dropout)


@register_model("vgg16", task="classify")
def vgg16(num_classes: int = 1000, in_channels: int = 3, imgsz: int = 224, batch_norm: bool = False, dropout: float = 0.5) -> VGG:
    return VGG("D", num_classes, in_channels, imgsz, batch_norm, dropout)
