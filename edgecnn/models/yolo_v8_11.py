"""YOLOv8 and YOLO11 detectors (n, s) with the tensors of the Ultralytics models of those names.

Parameter and buffer names and shapes are those of Ultralytics' DetectionModel (`model.0.conv.weight`
… `model.22.dfl.conv.weight`), so the weights of an Ultralytics checkpoint load one to one
(`edgecnn.models.ultralytics_checkpoint` reads them without running the pickle). The code is ours,
and the outputs follow our contract (edgecnn/models/__init__.py), not theirs: boxes as ltrb
distances in stride units and class scores in separate tensors, flattened channels-last, so the
export has no Transpose before the outputs and int8 gives boxes and scores their own scales.

The blocks keep the activation these weights were trained with (SiLU) and BatchNorm's eps 1e-3.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from edgecnn.config import ConfigError
from edgecnn.models.layers import make_divisible
from edgecnn.models.registry import register_model
from edgecnn.models.yolo import STRIDES, Detector, flatten_head

BN_EPS, BN_MOMENTUM = 1e-3, 0.03  # what Ultralytics sets on every BatchNorm2d of a detection model


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU (or none); 'same' padding."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(Conv):
    """Depthwise Conv (groups = gcd of the widths, i.e. the width when they are equal)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, act: bool = True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), act=act)


class Bottleneck(nn.Module):
    """Two convs (hidden width c2 * e), with a residual when the widths allow it."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, k: tuple[int, int] = (3, 3), e: float = 0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, k[0])
        self.cv2 = Conv(hidden, c2, k[1])
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class SplitInput(nn.Module):
    """A block whose 1x1 conv `cv1` makes two halves (C2f, C3k2, C2PSA), or, once
    `split_first_conv` has run, two convs `cv0` and `cv1`, one per half: the same function, in the
    form torch-pruning can follow (its 1.6 mis-indexes the channels of a split tensor), with
    halves that may be pruned to different widths."""

    def halves(self, x: torch.Tensor) -> list[torch.Tensor]:
        if hasattr(self, "cv0"):
            return [self.cv0(x), self.cv1(x)]
        return list(self.cv1(x).chunk(2, 1))

    def half_widths(self) -> tuple[int, int]:
        if hasattr(self, "cv0"):
            return self.cv0.conv.out_channels, self.cv1.conv.out_channels
        return self.c, self.c

    def split_first_conv(self) -> None:
        if hasattr(self, "cv0"):
            return
        whole = self.cv1
        halves = [Conv(whole.conv.in_channels, self.c, 1) for _ in range(2)]
        for i, half in enumerate(halves):
            rows = slice(i * self.c, (i + 1) * self.c)
            half.conv.weight.data.copy_(whole.conv.weight.data[rows])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(half.bn, name).data.copy_(getattr(whole.bn, name).data[rows])
            half.train(whole.training)
        self.cv0, self.cv1 = halves


class C2f(SplitInput):
    """CSP block of YOLOv8: one 1x1 conv split in two halves, a chain of blocks on the second half,
    a 1x1 conv fusing both halves and every block's output."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, (3, 3), e=1.0) for _ in range(n))

    residual_concat = False  # see concat_residuals

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.halves(x)
        z = y[-1]
        for block in self.m:
            if self.residual_concat:
                y.append(block.cv2(block.cv1(z)))
                z = z + y[-1]
            else:
                y.append(block(y[-1]))
        return self.cv2(torch.cat(y, 1))

    def concat_residuals(self) -> None:
        """The same function with each residual block's residual r_k in the concatenation instead
        of its output s_k = s_(k-1) + r_k: cv2 is linear in its inputs, so its weights for b and r_j
        become the sums of the old weights for s_k, k >= j. onnx2tf 1.29 computes an Add that feeds
        a Concat in NCHW and wraps it in Transposes (13 in yolov8n); this form has none there."""
        if self.residual_concat or not all(isinstance(b, Bottleneck) and b.add for b in self.m):
            return
        weight = self.cv2.conv.weight.data
        a, b = self.half_widths()  # each s_k is as wide as b: the residuals tie them
        parts = weight.split([a] + [b] * (len(self.m) + 1), dim=1)  # a, b = s_0, s_1 … s_n
        suffix_sums = torch.stack(parts[1:]).flip(0).cumsum(0).flip(0)
        weight.copy_(torch.cat([parts[0], *suffix_sums], 1))
        self.residual_concat = True


class C3k(nn.Module):
    """CSP block with two 1x1 branches, one through n bottlenecks with k x k convs."""

    def __init__(self, c1: int, c2: int, n: int = 2, shortcut: bool = True, e: float = 0.5, k: int = 3):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1)
        self.cv2 = Conv(c1, hidden, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, (k, k), e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(C2f):
    """YOLO11's C2f whose blocks are C3k (c3k=True) or narrow bottlenecks."""

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, shortcut: bool = True):
        super().__init__(c1, c2, n, shortcut, e)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2, shortcut) if c3k else Bottleneck(self.c, self.c, shortcut) for _ in range(n)
        )


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools, concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1)
        self.cv2 = Conv(hidden * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions with 1x1 q/k/v, plus a depthwise 3x3
    positional term on v (YOLO11's PSA)."""

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w).split(
            (self.key_dim, self.key_dim, self.head_dim), dim=2)
        attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class PSABlock(nn.Module):
    """Attention then a 1x1 feed-forward, each with a residual."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4):
        super().__init__()
        self.attn = Attention(c, num_heads, attn_ratio)
        self.ffn = nn.Sequential(Conv(c, 2 * c, 1), Conv(2 * c, c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(SplitInput):
    """A 1x1 conv split in two halves, attention blocks on the second, a 1x1 conv fusing both."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5):
        super().__init__()
        if c1 != c2:
            raise ValueError(f"C2PSA keeps its width: got {c1} in, {c2} out")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, 0.5, max(self.c // 64, 1)) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.halves(x)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class Concat(nn.Module):
    """Concatenation along channels (a layer of its own so layer indices match Ultralytics')."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


class DFL(nn.Module):
    """The expectation over the distribution-focal-loss bins, as a fixed 1x1 conv's weights
    (0 … reg_max-1). Applied to the last axis as a matrix product: the same numbers as the conv,
    but the tensor stays channels-last (no Transpose in the TFLite graph)."""

    def __init__(self, reg_max: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return probs @ self.conv.weight.view(-1, 1)


class Detect(nn.Module):
    """Per level: a box branch (4 x reg_max DFL bins) and a class branch. YOLOv8's class branch has
    two 3x3 convs (`legacy`), YOLO11's two depthwise-separable pairs. `cls_width` defaults to
    Ultralytics' max(ch[0], min(nc, 100)); a checkpoint's own width keeps its hidden class layers
    loadable when only the number of classes changes."""

    def __init__(self, nc: int, ch: tuple[int, ...], legacy: bool, reg_max: int = 16, cls_width: int | None = None):
        super().__init__()
        self.nc, self.reg_max = nc, reg_max
        c2 = max(16, ch[0] // 4, 4 * reg_max)
        c3 = cls_width or max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch)
        if legacy:
            self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)), nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                              nn.Conv2d(c3, nc, 1))
                for x in ch
            )
        self.dfl = DFL(reg_max)
        self.reset_bias()

    def reset_bias(self) -> None:
        """Ultralytics' initial biases: box bins 2.0, class logits for ~5 objects per 640 image."""
        for stride, box, cls in zip(STRIDES, self.cv2, self.cv3):
            nn.init.constant_(box[-1].bias, 2.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.nc / (640 / stride) ** 2))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return flatten_head(self.cv2, self.cv3, self.dfl, feats, self.reg_max, self.nc)


# The layer tables: (inputs, repeats, block, block arguments before width scaling). `inputs` -1 is the
# previous layer; widths are scaled by the model's width multiple, repeats by its depth multiple.
_BACKBONE_V8 = [(-1, 1, "conv", (64, 3, 2)), (-1, 1, "conv", (128, 3, 2)), (-1, 3, "c2f", (128, True)),
                (-1, 1, "conv", (256, 3, 2)), (-1, 6, "c2f", (256, True)), (-1, 1, "conv", (512, 3, 2)),
                (-1, 6, "c2f", (512, True)), (-1, 1, "conv", (1024, 3, 2)), (-1, 3, "c2f", (1024, True)),
                (-1, 1, "sppf", (1024, 5))]
_HEAD_V8 = [(-1, 1, "up", ()), ((-1, 6), 1, "cat", ()), (-1, 3, "c2f", (512,)),
            (-1, 1, "up", ()), ((-1, 4), 1, "cat", ()), (-1, 3, "c2f", (256,)),
            (-1, 1, "conv", (256, 3, 2)), ((-1, 12), 1, "cat", ()), (-1, 3, "c2f", (512,)),
            (-1, 1, "conv", (512, 3, 2)), ((-1, 9), 1, "cat", ()), (-1, 3, "c2f", (1024,)),
            ((15, 18, 21), 1, "detect", ())]
_BACKBONE_11 = [(-1, 1, "conv", (64, 3, 2)), (-1, 1, "conv", (128, 3, 2)), (-1, 2, "c3k2", (256, False, 0.25)),
                (-1, 1, "conv", (256, 3, 2)), (-1, 2, "c3k2", (512, False, 0.25)), (-1, 1, "conv", (512, 3, 2)),
                (-1, 2, "c3k2", (512, True)), (-1, 1, "conv", (1024, 3, 2)), (-1, 2, "c3k2", (1024, True)),
                (-1, 1, "sppf", (1024, 5)), (-1, 2, "c2psa", (1024,))]
_HEAD_11 = [(-1, 1, "up", ()), ((-1, 6), 1, "cat", ()), (-1, 2, "c3k2", (512, False)),
            (-1, 1, "up", ()), ((-1, 4), 1, "cat", ()), (-1, 2, "c3k2", (256, False)),
            (-1, 1, "conv", (256, 3, 2)), ((-1, 13), 1, "cat", ()), (-1, 2, "c3k2", (512, False)),
            (-1, 1, "conv", (512, 3, 2)), ((-1, 10), 1, "cat", ()), (-1, 2, "c3k2", (1024, True)),
            ((16, 19, 22), 1, "detect", ())]
FAMILIES = {"yolov8": _BACKBONE_V8 + _HEAD_V8, "yolo11": _BACKBONE_11 + _HEAD_11}
# scale → (depth multiple, width multiple, max channels), as the published n and s models
SCALES = {"yolov8": {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024)},
          "yolo11": {"n": (0.50, 0.25, 1024), "s": (0.50, 0.50, 1024)}}
_REPEATED = {"c2f": C2f, "c3k2": C3k2, "c2psa": C2PSA}


class YoloV8Net(Detector):
    """A YOLOv8 / YOLO11 network as an indexed layer list (`model.<i>`, Ultralytics' names),
    with our output contract (Detector.forward)."""

    def __init__(self, family: str, scale: str, num_classes: int, in_channels: int, reg_max: int, cls_width: int | None,
                 split_convs: bool = False):
        nn.Module.__init__(self)
        depth, width, max_channels = SCALES[family][scale]
        layers, widths, self.inputs = [], [], []
        for source, repeats, kind, args in FAMILIES[family]:
            c_in = widths[source] if isinstance(source, int) and widths else in_channels
            n = max(round(repeats * depth), 1) if repeats > 1 else repeats
            if kind in ("up", "cat"):
                layer, c_out = ((nn.Upsample(scale_factor=2, mode="nearest"), c_in) if kind == "up"
                                else (Concat(), sum(widths[s] for s in source)))
            elif kind == "detect":
                layer = Detect(num_classes, tuple(widths[s] for s in source), legacy=family == "yolov8", reg_max=reg_max,
                               cls_width=cls_width)
                c_out = None
            else:
                c_out = make_divisible(min(args[0], max_channels) * width)
                if kind == "conv":
                    layer = Conv(c_in, c_out, *args[1:])
                elif kind == "sppf":
                    layer = SPPF(c_in, c_out, *args[1:])
                else:
                    layer = _REPEATED[kind](c_in, c_out, n, *args[1:])
            layers.append(layer)
            widths.append(c_out)
            self.inputs.append(source)
        self.model = nn.ModuleList(layers)
        self.num_classes, self.strides = num_classes, STRIDES
        self._keep = {s for source in self.inputs if not isinstance(source, int) for s in source if s != -1}
        if split_convs:
            self._split_first_convs()

    def _split_first_convs(self) -> None:
        for module in self.modules():
            if isinstance(module, SplitInput):
                module.split_first_conv()

    def make_prunable(self) -> None:
        """Split every C2f/C3k2/C2PSA's first conv in two (SplitInput), in place, and record it in
        `arch`, so that a pruned checkpoint rebuilds in this form."""
        self._split_first_convs()
        if hasattr(self, "arch"):
            self.arch["kwargs"]["split_convs"] = True

    @property
    def head(self) -> Detect:
        return self.model[-1]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        saved = {}
        for i, (layer, source) in enumerate(zip(self.model, self.inputs)):
            if not isinstance(source, int):
                x = [x if s == -1 else saved[s] for s in source]
            if i == len(self.model) - 1:
                return x
            x = layer(x)
            if i in self._keep:
                saved[i] = x
        raise AssertionError("the layer table ends with the detect layer")

    def for_export(self) -> YoloV8Net:
        """A copy computing the same function in the form that converts to TFLite without Transposes
        (C2f.concat_residuals); the checkpoint keeps Ultralytics' form."""
        model = copy.deepcopy(self)
        for module in model.modules():
            if isinstance(module, C2f):
                module.concat_residuals()
        return model

    def freeze_prefixes(self, freeze: str | int) -> list[str]:
        """Parameter name prefixes `freeze` selects: 'backbone' (the layers before the first
        upsampling) or N (the first N layers, as Ultralytics' freeze=N)."""
        if freeze == "backbone":
            count = next(i for i, m in enumerate(self.model) if isinstance(m, nn.Upsample))
        elif isinstance(freeze, int) or str(freeze).isdigit():
            count = int(freeze)
        else:
            raise ConfigError(f"freeze={freeze!r}: use 'backbone' or a number of layers (0-{len(self.model) - 1})")
        return [f"model.{i}." for i in range(min(count, len(self.model)))]

    def output_layers(self) -> list[nn.Module]:
        """The head's last convs and the DFL (fixed by the output contract), and the attention
        blocks: their widths are tied to the head count by reshapes torch-pruning cannot follow."""
        head = self.head
        attention = [m for m in self.modules() if isinstance(m, PSABlock)]
        return [b[-1] for b in head.cv2] + [c[-1] for c in head.cv3] + [head.dfl.conv] + [
            conv for block in attention for conv in block.modules() if isinstance(conv, nn.Conv2d)]


def _register(family: str, scale: str) -> None:
    @register_model(f"{family}{scale}", task="detect", imgsz=640, strides=STRIDES, prune_keep="declared")
    def factory(num_classes: int = 80, in_channels: int = 3, reg_max: int = 16, cls_width: int | None = None,
                split_convs: bool = False) -> YoloV8Net:
        return YoloV8Net(family, scale, num_classes, in_channels, reg_max, cls_width, split_convs)

    factory.__doc__ = (f"{family}{scale} with Ultralytics' tensor names; cls_width: the class branch's hidden width; "
                       "split_convs: the prunable form (YoloV8Net.make_prunable)")


for _family in FAMILIES:
    for _scale in SCALES[_family]:
        _register(_family, _scale)
