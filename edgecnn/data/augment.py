"""Training augmentation on letterboxed uint8 images, with boxes or masks kept in step (torchvision v2).

Detection: mosaic of four images (hand-made: torchvision has none), then random scale/translate,
horizontal flip and HSV-like colour jitter, each moving the boxes with the pixels; boxes that leave
the image or shrink below 2 px are dropped. Classification: the classic set (rotation, shift,
shear, zoom, channel shift, optional flip). Segmentation: scale jitter, flip and colour on image
and mask together, then a random crop.

Every random draw comes from the torch generator seeded by the sample's own seed, so an epoch's
augmentations are the same whatever the number of workers, and a resumed run sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from edgecnn.runtime.preprocess import PAD_VALUE


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths; 0 turns a transform off. Defaults per task live in `DEFAULTS`."""

    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    channel_shift: float = 0.0
    mosaic: float = 1.0


DEFAULTS = {
    "detect": AugmentConfig(),
    "classify": AugmentConfig(degrees=10, translate=0.1, scale=0.1, shear=10, fliplr=0.0, hsv_h=0, hsv_s=0,
                              hsv_v=0, channel_shift=0.1, mosaic=0.0),
    "embed": AugmentConfig(degrees=0, translate=0.05, scale=0.1, shear=0, fliplr=0.5, hsv_h=0.015, hsv_s=0.4,
                           hsv_v=0.3, channel_shift=0.0, mosaic=0.0),
    # scale jitter 0.5-1.5 and a random crop, as segmentation recipes train (torchvision's references: 0.5-2.0)
    "segment": AugmentConfig(degrees=0, translate=0.0, scale=0.5, shear=0, fliplr=0.5, hsv_h=0.015, hsv_s=0.5,
                             hsv_v=0.3, channel_shift=0.0, mosaic=0.0),
}


class ChannelShift(v2.Transform):
    """Add a random offset in [-intensity, intensity] (fraction of 255) to each colour channel."""

    def __init__(self, intensity: float):
        super().__init__()
        self.intensity = intensity

    def make_params(self, flat_inputs):
        return {"shift": (torch.rand(3) * 2 - 1) * self.intensity * 255}

    def transform(self, inpt, params):
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        shifted = inpt.float() + params["shift"].view(3, 1, 1)
        return tv_tensors.wrap(shifted.clamp(0, 255).to(inpt.dtype), like=inpt)


def geometric_and_colour(cfg: AugmentConfig, fill=PAD_VALUE) -> list[v2.Transform]:
    """`fill`: the border value of the affine transform (a `{tv_tensor type: value}` dict gives masks their own)."""
    out: list[v2.Transform] = []
    if cfg.degrees or cfg.translate or cfg.scale or cfg.shear:
        out.append(v2.RandomAffine(
            degrees=cfg.degrees,
            translate=(cfg.translate, cfg.translate) if cfg.translate else None,
            scale=(max(1 - cfg.scale, 0.05), 1 + cfg.scale) if cfg.scale else None,
            shear=cfg.shear or None,
            interpolation=v2.InterpolationMode.BILINEAR,
            fill=fill,
        ))
    if cfg.fliplr:
        out.append(v2.RandomHorizontalFlip(cfg.fliplr))
    if cfg.hsv_h or cfg.hsv_s or cfg.hsv_v:
        out.append(v2.ColorJitter(brightness=cfg.hsv_v or None, saturation=cfg.hsv_s or None, hue=cfg.hsv_h or None))
    if cfg.channel_shift:
        out.append(ChannelShift(cfg.channel_shift))
    return out


class DetectionAugment:
    """(image uint8 (3, H, W), boxes xyxy (N, 4), labels (N,)) -> the same, augmented."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.transform = v2.Compose(
            geometric_and_colour(cfg) + [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=2, min_area=4)]
        )

    def __call__(self, image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor):
        sample = {
            "image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(image.shape[-2:])),
            "labels": labels,
        }
        out = self.transform(sample)
        return out["image"].as_subclass(torch.Tensor), out["boxes"].as_subclass(torch.Tensor), out["labels"]


class ClassificationAugment:
    def __init__(self, cfg: AugmentConfig):
        self.transform = v2.Compose(geometric_and_colour(cfg))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(tv_tensors.Image(image)).as_subclass(torch.Tensor)


class SegmentationAugment:
    """(image uint8 (3, H, W), mask (H, W)) -> an augmented `crop`-sized pair: scale jitter,
    flip and colour on both in step (masks move with nearest-neighbour sampling), then a random
    crop; borders the image never covered are grey in the image and `ignore_index` in the mask."""

    def __init__(self, cfg: AugmentConfig, crop: tuple[int, int], ignore_index: int):
        fill = {tv_tensors.Image: PAD_VALUE, tv_tensors.Mask: ignore_index}
        self.transform = v2.Compose(geometric_and_colour(cfg, fill) + [v2.RandomCrop(crop, pad_if_needed=True, fill=fill)])

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def mosaic(samples, size: int):
    """Four (image (3, s, s), boxes, labels) samples -> one s x s mosaic around a random centre.

    The four images tile a 2s x 2s canvas meeting at a random point of its middle half; the
    middle s x s window is kept, so each image contributes a corner of random size.
    """
    canvas = torch.full((3, 2 * size, 2 * size), PAD_VALUE, dtype=torch.uint8)
    xc, yc = (torch.randint(size // 2, size * 3 // 2 + 1, (2,))).tolist()
    all_boxes, all_labels = [], []
    for k, (image, boxes, labels) in enumerate(samples):
        h, w = image.shape[-2:]
        x0 = xc - w if k in (0, 2) else xc  # top-left, top-right, bottom-left, bottom-right
        y0 = yc - h if k in (0, 1) else yc
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + w, 2 * size), min(y0 + h, 2 * size)
        canvas[:, cy0:cy1, cx0:cx1] = image[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        all_boxes.append(boxes + torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype))
        all_labels.append(labels)
    off = size // 2
    image = canvas[:, off : off + size, off : off + size].clone()
    boxes = (torch.cat(all_boxes) - off).clamp(0, size)
    labels = torch.cat(all_labels)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
    return image, boxes[keep], labels[keep]

