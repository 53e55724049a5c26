"""AlexNet (Krizhevsky et al., 2012) from torchvision: five convolutions, ReLU, max-pooling,
three fully connected layers with dropout; no normalization layers.

At 96 px and up it is torchvision's network (11x11 stride-4 stem, 6x6x256 → 4096 → 4096 →
classes), so its ImageNet weight files load as they are. Below that (CIFAR's 32 px) the stem is a
3x3 stride-1 convolution, the features are pooled to 3x3 and the 4096-wide layers become 512
wide, as our small-input VGG and ResNet do, instead of shrinking a 32 px image to 1x1 by the
second pooling.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import alexnet as tv_alexnet

from edgecnn.models.registry import register_model
from edgecnn.models.resnet import SMALL_INPUT


@register_model("alexnet", task="classify")
def alexnet(num_classes: int = 1000, in_channels: int = 3, imgsz: int = 224, dropout: float = 0.5) -> nn.Module:
    model = tv_alexnet(weights=None, num_classes=num_classes, dropout=dropout)
    if imgsz < SMALL_INPUT:
        model.features[0] = nn.Conv2d(in_channels, 64, 3, 1, 1)
        model.avgpool = nn.AdaptiveAvgPool2d(3)
        model.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 3 * 3, 512), nn.ReLU(True),
            nn.Dropout(dropout), nn.Linear(512, 512), nn.ReLU(True),
            nn.Linear(512, num_classes),
        )
    elif in_channels != 3:
        model.features[0] = nn.Conv2d(in_channels, 64, 11, 4, 2)
    return model
