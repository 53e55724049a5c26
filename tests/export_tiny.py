"""A tiny model that keeps the detector/classifier output contract, for fast export tests.

Seconds to convert with onnx2tf where the zoo's yolo-n takes a minute on a 2-core machine.
Sizes are chosen so no head tensor has H == W == C (onnx2tf cannot tell NCHW from NHWC then).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

IMGSZ = 96
NAMES = ["person", "car"]
META = {"task": "detect", "names": NAMES, "imgsz": IMGSZ, "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225], "strides": [8, 16, 32], "run_hash": "tiny"}


def conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class TinyDetector(nn.Module):
    """(boxes (B, A, 4) ltrb in stride units, scores (B, A, C) sigmoid) over strides 8/16/32."""

    def __init__(self, num_classes: int = len(NAMES), width: int = 8):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(conv(3, width, 2), conv(width, width, 2))
        self.levels = nn.ModuleList(conv(width, width, 2) for _ in range(3))
        self.box = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in range(3))
        self.cls = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in range(3))

    def forward(self, x):
        x = self.stem(x)
        boxes, scores = [], []
        for level, box, cls in zip(self.levels, self.box, self.cls):
            x = level(x)
            boxes.append(box(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))
            scores.append(cls(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.num_classes))
        boxes = nn.functional.softplus(torch.cat(boxes, 1))
        scores = torch.cat(scores, 1)
        return boxes, scores if self.training else scores.sigmoid()


class SpatialAttention(nn.Module):
    """Self-attention over the positions of a feature map, as in YOLO11's C2PSA: two products of
    activations (q·k, attention·v), which TFLite runs as BATCH_MATMUL."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).split(self.channels, dim=1)
        attention = (q.transpose(1, 2) @ k * c**-0.5).softmax(dim=-1)
        return x + (v @ attention.transpose(1, 2)).view(b, c, h, w)


class TinyAttentionDetector(TinyDetector):
    """TinyDetector with attention after its last level."""

    def __init__(self, num_classes: int = len(NAMES), width: int = 8):
        super().__init__(num_classes, width)
        self.levels[-1] = nn.Sequential(self.levels[-1], SpatialAttention(width))


def tiny_detector(seed: int = 0, attention: bool = False) -> TinyDetector:
    torch.manual_seed(seed)
    model = (TinyAttentionDetector if attention else TinyDetector)().eval()
    with torch.no_grad():  # spread BN statistics so outputs vary across images
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def random_images(n: int, size: int = IMGSZ, seed: int = 0):
    """Smooth random uint8 RGB images (N, size, size, 3): blobs, not white noise, like photos."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size // 8, size // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC) for img in small])


class FixedDetector(nn.Module):
    """Answers the same boxes for every image, so a validation through the device path must score 1.0.

    `boxes_xyxy` are in model-input pixels; each is put on the nearest stride-8 anchor.
    """

    def __init__(self, boxes_xyxy, classes, imgsz: int = IMGSZ, num_classes: int = len(NAMES), score: float = 0.9):
        import numpy as np

        from edgecnn.runtime.postprocess import make_anchors

        super().__init__()
        centres, strides = make_anchors((imgsz, imgsz), (8, 16, 32))
        ltrb = np.full((len(centres), 4), 0.5, np.float32)
        scores = np.zeros((len(centres), num_classes), np.float32)
        for box, cls in zip(np.asarray(boxes_xyxy, np.float32), classes):
            centre = (box[:2] + box[2:]) / 2
            i = int(np.argmin(np.where(strides == 8, np.abs(centres - centre).sum(1), np.inf)))
            ltrb[i] = np.concatenate([centres[i] - box[:2], box[2:] - centres[i]]) / strides[i]
            scores[i, cls] = score
        self.register_buffer("ltrb", torch.from_numpy(ltrb)[None])
        self.probs = nn.Parameter(torch.from_numpy(scores)[None], requires_grad=False)

    def forward(self, x):
        zero = x[:, :1, 0, :1] * 0  # (B, 1, 1): ties the outputs to the input's batch
        return self.ltrb + zero, self.probs + zero


# The labelled frames of the `dataset` fixture (conftest.py) and where a FixedDetector must put them.
FRAME_W, FRAME_H = 120, 80  # letterboxed into 96x96: scale 0.8, 16 px of padding above and below
GT = np.array([[20, 10, 60, 50], [70, 30, 110, 70]], np.float32)
GT_CLASSES = [0, 1]


def to_model_pixels(boxes: np.ndarray) -> np.ndarray:
    return boxes * 0.8 + np.array([0, 16, 0, 16], np.float32)


SEG_HW = (48, 64)
SEG_NAMES = ["background", "road", "person"]
SEG_META = {"task": "segment", "names": SEG_NAMES, "imgsz": list(SEG_HW), "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "run_hash": "tiny-seg"}


class TinySegmenter(nn.Module):
    """NCHW logits at the input size from logits at stride 8 upsampled bilinearly, as LR-ASPP does."""

    def __init__(self, num_classes: int = len(SEG_NAMES), width: int = 8):
        super().__init__()
        self.body = nn.Sequential(conv(3, width, 2), conv(width, width, 2), conv(width, width, 2))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        logits = self.classifier(self.body(x))
        return nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def tiny_segmenter(seed: int = 0) -> TinySegmenter:
    torch.manual_seed(seed)
    model = TinySegmenter().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


COLOUR_NAMES = ["red", "green", "blue"]
COLOUR_META = {"task": "segment", "names": COLOUR_NAMES, "imgsz": [96, 128], "mean": [0.0, 0.0, 0.0],
               "std": [1.0, 1.0, 1.0], "run_hash": "colours"}


class ColourSegmenter(nn.Module):
    """Class = the strongest RGB channel, averaged over 8x8 blocks: logits at stride 8 upsampled
    bilinearly, so the segmentation of a frame of coloured areas is known."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.scale.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 4)
            self.scale.bias.zero_()

    def forward(self, x):
        logits = self.scale(nn.functional.avg_pool2d(x, 8))
        return nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
