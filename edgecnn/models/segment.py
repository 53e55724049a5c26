"""Semantic segmentation models: FCN, U-Net, DeepLabv3 (ASPP) and LR-ASPP, built without weights.

Every model maps (N, 3, H, W) to class logits (N, C, H, W) at the input size: the head runs at
the backbone's stride and a bilinear resize brings it back (in the graph, so an export carries
it). The torchvision models (LR-ASPP, DeepLabv3) return a dict; `Segmenter` unwraps it and
returns the auxiliary head's logits as well only in training mode, where the loss uses them.

- `fcn-resnet18`, `fcn-mnv3`: FCN-8s (Long et al., 2015): a classifier's features at strides 8,
  16 and 32 each scored by a 1x1 conv, the coarse scores upsampled by learned 2x transposed
  convolutions (initialized bilinear) and summed with the finer ones, then resized to the input.
- `unet-s`: a small U-Net (Ronneberger et al., 2015): four 2x2-pooled encoder stages, a decoder
  that upsamples and concatenates the encoder's map of the same stride.
- `deeplabv3-mnv3`: torchvision's DeepLabv3 on a dilated MobileNetV3-Large (ASPP at stride 16).
- `lraspp-mnv3`, `lraspp-mnv3s`: torchvision's LR-ASPP on MobileNetV3-Large / -Small, the edge models;
  `lraspp-mnv3s-min` on the minimalistic MobileNetV3-Small (3x3, ReLU, no squeeze-and-excite).

The backbones are the classifiers of the zoo (same layer names below `backbone.`), so
`load_backbone` can start one from an edgecnn classification checkpoint.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenetv3, resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large
from torchvision.models.segmentation.lraspp import LRASPP

from edgecnn.models.registry import register_model

LOG = logging.getLogger(__name__)
SEG_IMGSZ = (360, 480)  # CamVid's frames; the models run at any size (multiples of 32 keep strides exact)


# torchvision's MobileNetV3 sets BatchNorm momentum 0.01, made for ImageNet-length runs: trained
# from scratch on CamVid, its running statistics still lagged the weights after 3 epochs (135 steps)
# and the eval-mode model scored 1.3 mIoU where batch statistics gave 27.3. 0.1 is PyTorch's default.
BN_MOMENTUM = 0.1


def with_bn_momentum(model: nn.Module, momentum: float = BN_MOMENTUM) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = momentum
    return model


def resize_to(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Segmenter(nn.Module):
    """A torchvision segmentation model with a tensor output: logits (N, C, H, W) at the input size;
    (logits, auxiliary logits) in training mode when it has an auxiliary head."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.backbone, self.classifier = net.backbone, net.classifier
        self.aux_classifier = getattr(net, "aux_classifier", None)
        self.uses_dict = not hasattr(net, "aux_classifier")  # LR-ASPP's head takes the feature dict

    def forward(self, x: torch.Tensor):
        features = self.backbone(x)
        logits = resize_to(self.classifier(features if self.uses_dict else features["out"]), x.shape[-2:])
        if self.training and self.aux_classifier is not None:
            return logits, resize_to(self.aux_classifier(features["aux"]), x.shape[-2:])
        return logits

    def output_layers(self) -> list[nn.Module]:
        """The convolutions that produce class scores (pruning keeps their widths): the last conv
        of each head, and LR-ASPP's classifier of the low-level features."""
        heads = [head for head in (self.classifier, self.aux_classifier) if head is not None]
        layers = [[m for m in head.modules() if isinstance(m, nn.Conv2d)][-1] for head in heads]
        low = getattr(self.classifier, "low_classifier", None)
        return layers + ([low] if low is not None else [])


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Weights of a transposed conv that upsamples each channel bilinearly (FCN's initialization)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


class FCN8s(nn.Module):
    """FCN-8s over a backbone returning {"s8", "s16", "s32"} feature maps of `channels` widths."""

    def __init__(self, backbone: nn.Module, channels: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.score = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in channels)
        self.up = nn.ModuleList(nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False) for _ in range(2))
        for up in self.up:
            up.weight.data.copy_(bilinear_kernel(num_classes, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        s8, s16, s32 = (score(feats[k]) for score, k in zip(self.score, ("s8", "s16", "s32")))
        # a 2x transposed conv gives 2n >= the finer map's size; crop the overhang, as FCN does
        y = self.up[0](s32)[..., : s16.shape[-2], : s16.shape[-1]] + s16
        y = self.up[1](y)[..., : s8.shape[-2], : s8.shape[-1]] + s8
        return resize_to(y, x.shape[-2:])

    def output_layers(self) -> list[nn.Module]:
        return [*self.score, *self.up]


def mobilenet_stage_ends(features: nn.Sequential) -> list[int]:
    """Index of the last block before each stride-2 block, and of the last block (output strides 4, 8, 16, 32)."""
    starts = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
    return [i - 1 for i in starts[1:]] + [len(features) - 1]


@register_model("fcn-resnet18", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def fcn_resnet18(num_classes: int = 11) -> nn.Module:
    body = resnet.resnet18(weights=None)
    backbone = IntermediateLayerGetter(body, {"layer2": "s8", "layer3": "s16", "layer4": "s32"})
    return FCN8s(backbone, (128, 256, 512), num_classes)


@register_model("fcn-mnv3", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def fcn_mnv3(num_classes: int = 11) -> nn.Module:
    features = mobilenetv3.mobilenet_v3_large(weights=None).features
    ends = mobilenet_stage_ends(features)[-3:]
    backbone = IntermediateLayerGetter(features, {str(i): k for i, k in zip(ends, ("s8", "s16", "s32"))})
    return with_bn_momentum(FCN8s(backbone, tuple(features[i].out_channels for i in ends), num_classes))


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNet(nn.Module):
    """Encoder of `len(widths)` stages (2x2 max-pool between), decoder with skip concatenation."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128, 256)):
        super().__init__()
        self.down = nn.ModuleList(double_conv(cin, cout) for cin, cout in zip((3, *widths[:-1]), widths))
        self.up = nn.ModuleList(double_conv(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.down):
            x = stage(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for stage, skip in zip(reversed(self.up), reversed(skips[:-1])):
            x = stage(torch.cat([resize_to(x, skip.shape[-2:]), skip], 1))
        return self.head(x)

    def output_layers(self) -> list[nn.Module]:
        return [self.head]


@register_model("unet-s", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def unet_s(num_classes: int = 11, width: int = 16) -> nn.Module:
    return UNet(num_classes, tuple(width * 2**i for i in range(5)))


@register_model("deeplabv3-mnv3", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def deeplabv3_mnv3(num_classes: int = 11, aux_loss: bool = False) -> nn.Module:
    return with_bn_momentum(Segmenter(deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                   num_classes=num_classes, aux_loss=aux_loss)))


@register_model("lraspp-mnv3", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def lraspp_mnv3(num_classes: int = 11) -> nn.Module:
    return with_bn_momentum(Segmenter(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                num_classes=num_classes)))


def minimalistic_small() -> nn.Sequential:
    """The features of MobileNetV3-Small's "minimalistic" variant (Howard et al., 2019; Keras'
    `minimalistic=True`), dilated as LR-ASPP uses it: its widths with 3x3 kernels, ReLU and no
    squeeze-and-excite: int8 needs no float or slow kernel (README: int8_layers.py)."""
    settings, last_channel = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", dilated=True)
    for cfg in settings:
        cfg.kernel, cfg.use_se, cfg.use_hs = 3, False, False
    features = mobilenetv3.MobileNetV3(settings, last_channel).features
    for sequence in (features[0], features[-1]):  # the stem and the last 1x1 conv: Hardswish in torchvision
        sequence[-1] = nn.ReLU(inplace=True)
    return features


def lraspp_small(features: nn.Sequential, num_classes: int) -> nn.Module:
    # torchvision's recipe for the large model: the first stride-8 block and the last (stride 16, dilated)
    low, high = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)][-3], len(features) - 1
    backbone = IntermediateLayerGetter(features, {str(low): "low", str(high): "high"})
    return with_bn_momentum(Segmenter(LRASPP(backbone, features[low].out_channels, features[high].out_channels,
                                             num_classes)))


@register_model("lraspp-mnv3s", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def lraspp_mnv3s(num_classes: int = 11) -> nn.Module:
    return lraspp_small(mobilenetv3.mobilenet_v3_small(weights=None, dilated=True).features, num_classes)


@register_model("lraspp-mnv3s-min", task="segment", imgsz=SEG_IMGSZ, prune_keep="declared")
def lraspp_mnv3s_min(num_classes: int = 11) -> nn.Module:
    return lraspp_small(minimalistic_small(), num_classes)


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A classifier's tensors under the names the segmentation backbones give them: `backbone.` +
    the name, with MobileNet's `features.` dropped (its blocks sit right under `backbone`)."""
    out = OrderedDict()
    for key, tensor in state.items():
        out["backbone." + key] = tensor
        if key.startswith("features."):
            out["backbone." + key[len("features."):]] = tensor
    return out


def load_backbone(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Start `model`'s backbone from an edgecnn classification checkpoint (or a torchvision
    state_dict) of the same family: tensors load where names and shapes match; returns what loaded."""
    from edgecnn.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a checkpoint or state_dict of a classifier")
    own = model.state_dict()
    candidates = backbone_state(state)
    loaded = {k: v for k, v in candidates.items() if k in own and own[k].shape == v.shape}
    wanted = [k for k in own if k.startswith("backbone.")]
    if not loaded:
        raise ValueError(f"{path}: no tensor matches the backbone of {type(model).__name__} by name and shape "
                         "(give a classifier of the same family, e.g. mobilenet_v3_large for lraspp-mnv3)")
    model.load_state_dict(loaded, strict=False)
    LOG.info("backbone: loaded %d of its %d tensors from %s", len(loaded), len(wanted), path)
    return {"loaded": sorted(loaded), "missing": [k for k in wanted if k not in loaded]}
