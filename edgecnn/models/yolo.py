"""YOLO-style anchor-free detector: CSP backbone (C2f), PAN neck, decoupled head, strides 8/16/32.

yolo-n and yolo-s are built only from ops that are fast in int8 on XNNPACK and TensorRT:
Conv + BN + ReLU, max-pool, nearest upsample, concat and add; onnx2tf turns them into a TFLite
graph without a single Transpose. yolo-r18 and yolo-mnv3 take torchvision backbones so training
can start from ImageNet weights. No box decoding in the graph (the runtime does it in numpy).

Output contract (edgecnn/models/__init__.py): eval mode returns `(boxes, scores)`, boxes (B, A, 4) as
left/top/right/bottom distances from each anchor centre in stride units, scores (B, A, C) as
sigmoid probabilities. Training mode returns `(boxes, scores, box_bins)` with scores as logits
and box_bins (B, A, 4, reg_max), the distribution-focal-loss logits whose expectation is boxes."""

from __future__ import annotations

import math

import torch
import torchvision
from torch import nn

from edgecnn.models.layers import C2f, ConvBNReLU, SPPF, make_divisible
from edgecnn.models.registry import register_model

STRIDES = (8, 16, 32)


class CSPBackbone(nn.Module):
    """YOLOv8-style backbone scaled by width/depth; returns the stride 8, 16 and 32 maps."""

    def __init__(self, in_channels: int, width: float, depth: float, max_channels: int = 1024):
        super().__init__()
        c = [make_divisible(min(b, max_channels) * width) for b in (64, 128, 256, 512, 1024)]
        n = [max(round(r * depth), 1) for r in (3, 6, 6, 3)]
        self.stem = ConvBNReLU(in_channels, c[0], 3, 2)
        self.stage2 = nn.Sequential(ConvBNReLU(c[0], c[1], 3, 2), C2f(c[1], c[1], n[0], shortcut=True))
        self.stage3 = nn.Sequential(ConvBNReLU(c[1], c[2], 3, 2), C2f(c[2], c[2], n[1], shortcut=True))
        self.stage4 = nn.Sequential(ConvBNReLU(c[2], c[3], 3, 2), C2f(c[3], c[3], n[2], shortcut=True))
        self.stage5 = nn.Sequential(ConvBNReLU(c[3], c[4], 3, 2), C2f(c[4], c[4], n[3], shortcut=True), SPPF(c[4], c[4]))
        self.channels = (c[2], c[3], c[4])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.stage3(self.stage2(self.stem(x)))
        p4 = self.stage4(p3)
        return [p3, p4, self.stage5(p4)]


class ResNet18Backbone(nn.Module):
    """torchvision's ResNet-18 (ReLU throughout) tapped after layer2/3/4 (strides 8, 16, 32).

    `body` keeps torchvision's module names, so ImageNet weight files load into it
    (`load_weights` maps them through the detector's `pretrained_prefix`).
    """

    channels = (128, 256, 512)

    def __init__(self, in_channels: int):
        super().__init__()
        self.body = torchvision.models.resnet18(weights=None)
        del self.body.fc, self.body.avgpool
        if in_channels != 3:
            self.body.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.body
        p3 = b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x))))))
        p4 = b.layer3(p3)
        return [p3, p4, b.layer4(p4)]


class MobileNetV3Backbone(nn.Module):
    """torchvision's MobileNetV3-Large features tapped at strides 8, 16, 32 (hardswish inside:
    fine on TensorRT, slower than ReLU in int8 XNNPACK). Module names are torchvision's."""

    channels = (40, 112, 160)
    taps = (6, 12, 15)  # last block of each stride; the 960-wide 1x1 conv after them is dropped

    def __init__(self, in_channels: int):
        super().__init__()
        self.body = torchvision.models.mobilenet_v3_large(weights=None)
        del self.body.classifier, self.body.avgpool
        self.body.features = self.body.features[: self.taps[-1] + 1]
        if in_channels != 3:
            self.body.features[0][0] = nn.Conv2d(in_channels, 16, 3, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.body.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs


class PAN(nn.Module):
    """FPN top-down then PAN bottom-up path over (P3, P4, P5), as in YOLOv8."""

    def __init__(self, c_in: tuple[int, int, int], c_out: tuple[int, int, int], n: int):
        super().__init__()
        c3, c4, c5 = c_in
        o3, o4, o5 = c_out
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(c5 + c4, o4, n)
        self.top3 = C2f(o4 + c3, o3, n)
        self.down3 = ConvBNReLU(o3, o3, 3, 2)
        self.bottom4 = C2f(o3 + o4, o4, n)
        self.down4 = ConvBNReLU(o4, o4, 3, 2)
        self.bottom5 = C2f(o4 + c5, o5, n)
        self.channels = c_out

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = feats
        t4 = self.top4(torch.cat([self.up(p5), p4], 1))
        n3 = self.top3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bottom4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bottom5(torch.cat([self.down4(n4), p5], 1))
        return [n3, n4, n5]


class DecoupledHead(nn.Module):
    """Per level, separate box (4 x reg_max DFL bins) and class branches of two 3x3 convs each."""

    def __init__(self, channels: tuple[int, ...], num_classes: int, reg_max: int):
        super().__init__()
        box_width = max(16, channels[0] // 4, 4 * reg_max)
        cls_width = max(channels[0], min(num_classes, 100))
        self.box = nn.ModuleList(
            nn.Sequential(ConvBNReLU(c, box_width, 3), ConvBNReLU(box_width, box_width, 3), nn.Conv2d(box_width, 4 * reg_max, 1))
            for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(ConvBNReLU(c, cls_width, 3), ConvBNReLU(cls_width, cls_width, 3), nn.Conv2d(cls_width, num_classes, 1))
            for c in channels
        )
        self.reg_max, self.num_classes = reg_max, num_classes
        # Expectation over the DFL bins as a fixed layer (YOLOv8's DFL conv, here a Linear over the
        # last axis: the same 1x1 product, but it stays channels-last, so no transposes in TFLite).
        self.dfl = nn.Linear(reg_max, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(reg_max, dtype=torch.float32)
        self.reset_bias()

    def reset_bias(self, prior: float = 0.01) -> None:
        """Class logits start at the prior probability, box bins flat, as YOLO initializes them."""
        for box, cls in zip(self.box, self.cls):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, -math.log((1 - prior) / prior))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return flatten_head(self.box, self.cls, self.dfl, feats, self.reg_max, self.num_classes)


def flatten_head(box: nn.ModuleList, cls: nn.ModuleList, dfl: nn.Module, feats: list[torch.Tensor], reg_max: int,
                 num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run each level's box and class branch; (boxes (B, A, 4), class logits (B, A, C), bins (B, A, 4, R)).

    Flattened channels-last (permute + reshape): NHWC runtimes see a plain reshape. `dfl` maps the
    bins' softmax (..., R) to its expectation (..., 1)."""
    b = feats[0].shape[0]
    bins = torch.cat([m(f).permute(0, 2, 3, 1).reshape(b, -1, 4, reg_max) for m, f in zip(box, feats)], 1)
    logits = torch.cat([m(f).permute(0, 2, 3, 1).reshape(b, -1, num_classes) for m, f in zip(cls, feats)], 1)
    return dfl(bins.softmax(-1)).squeeze(-1), logits, bins


class Detector(nn.Module):
    """Backbone → PAN → decoupled head; see the module docstring for the output contract."""

    task = "detect"

    def __init__(self, backbone: nn.Module, neck_channels: tuple[int, int, int], neck_depth: int, num_classes: int, reg_max: int = 16):
        super().__init__()
        if reg_max < 2:
            raise ValueError(f"reg_max must be >= 2 (DFL bins), got {reg_max}")
        self.backbone = backbone
        self.neck = PAN(backbone.channels, neck_channels, neck_depth)
        self.head = DecoupledHead(neck_channels, num_classes, reg_max)
        self.num_classes = num_classes
        self.strides = STRIDES
        if isinstance(backbone, (ResNet18Backbone, MobileNetV3Backbone)):
            self.pretrained_prefix = "backbone.body."

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        if not torch.jit.is_tracing() and (h % STRIDES[-1] or w % STRIDES[-1]):  # export: static shapes
            raise ValueError(f"detector input {h}x{w} must be a multiple of {STRIDES[-1]} on both sides")
        boxes, logits, box_bins = self.head(self.features(x))
        if self.training:
            return boxes, logits, box_bins
        return boxes, logits.sigmoid()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps at strides 8, 16, 32 that the head reads."""
        return self.neck(self.backbone(x))

    def output_layers(self) -> list[nn.Module]:
        """Layers whose widths are fixed by the output contract (pruning must leave them)."""
        return [m[-1] for m in self.head.box] + [m[-1] for m in self.head.cls] + [self.head.dfl]



def _csp_detector(num_classes: int, in_channels: int, reg_max: int, width: float, depth: float) -> Detector:
    backbone = CSPBackbone(in_channels, width, depth)
    return Detector(backbone, backbone.channels, max(round(3 * depth), 1), num_classes, reg_max)


@register_model("yolo-n", task="detect", imgsz=640, strides=STRIDES, prune_keep="declared")
def yolo_n(num_classes: int = 80, in_channels: int = 3, reg_max: int = 16) -> Detector:
    return _csp_detector(num_classes, in_channels, reg_max, width=0.25, depth=0.33)


@register_model("yolo-s", task="detect", imgsz=640, strides=STRIDES, prune_keep="declared")
def yolo_s(num_classes: int = 80, in_channels: int = 3, reg_max: int = 16) -> Detector:
    return _csp_detector(num_classes, in_channels, reg_max, width=0.5, depth=0.33)


@register_model("yolo-r18", task="detect", imgsz=640, strides=STRIDES, prune_keep="declared")
def yolo_r18(num_classes: int = 80, in_channels: int = 3, reg_max: int = 16) -> Detector:
    return Detector(ResNet18Backbone(in_channels), (64, 128, 256), 1, num_classes, reg_max)


@register_model("yolo-mnv3", task="detect", imgsz=640, strides=STRIDES, prune_keep="declared")
def yolo_mnv3(num_classes: int = 80, in_channels: int = 3, reg_max: int = 16) -> Detector:
    return Detector(MobileNetV3Backbone(in_channels), (64, 128, 256), 1, num_classes, reg_max)
