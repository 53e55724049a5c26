"""Training losses: the detector's (TAL + IoU box loss + BCE/varifocal + optional DFL), the
classifier's cross-entropy, and the embedder's batch-hard triplet loss with an optional ArcFace head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import complete_box_iou_loss, generalized_box_iou_loss

from edgecnn.train.assigner import TaskAlignedAssigner, anchor_points, boxes_to_distances, distances_to_boxes

BOX_LOSSES = {"ciou": complete_box_iou_loss, "giou": generalized_box_iou_loss}


class DetectionLoss(nn.Module):
    """Loss of a detector whose training output is `(boxes, scores[, box_bins])`.

    boxes (B, A, 4): distances in stride units (the output contract); scores (B, A, C): logits;
    box_bins (B, A, 4, R), when the model provides it: the distance distribution whose
    expectation is `boxes`, trained with distribution focal loss. Targets come as
    (N, 6) rows `batch_index, class, x1, y1, x2, y2` in input pixels.
    Returns the total loss and its parts (detached) for logging.
    """

    def __init__(self, num_classes: int, strides, box_loss: str = "ciou", cls_loss: str = "bce",
                 box_gain: float = 7.5, cls_gain: float = 0.5, dfl_gain: float = 1.5, topk: int = 10):
        super().__init__()
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {sorted(BOX_LOSSES)}, got {box_loss!r}")
        if cls_loss not in ("bce", "vfl"):
            raise ValueError(f"cls_loss must be 'bce' or 'vfl', got {cls_loss!r}")
        self.num_classes, self.strides = num_classes, tuple(strides)
        self.box_loss, self.cls_loss = BOX_LOSSES[box_loss], cls_loss
        self.gains = {"box": box_gain, "cls": cls_gain, "dfl": dfl_gain}
        self.assigner = TaskAlignedAssigner(topk=topk)

    def forward(self, outputs, targets: torch.Tensor, image_hw: tuple[int, int]):
        pred_dist, logits, *bins = outputs
        b, a, c = logits.shape
        if c != self.num_classes:
            raise ValueError(f"the model predicts {c} classes, the loss expects {self.num_classes}")
        points, strides = anchor_points(image_hw, self.strides, logits.device)
        if len(points) != a:
            raise ValueError(f"the model gives {a} anchors; strides {self.strides} at {image_hw} give {len(points)}")
        pred_dist, logits = pred_dist.float(), logits.float()
        pred_boxes = distances_to_boxes(pred_dist, points, strides)
        gt_labels, gt_boxes, gt_mask = pad_targets(targets, b)
        target_boxes, target_scores, fg = self.assigner(
            logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes, gt_mask)
        norm = target_scores.sum().clamp(min=1)

        if self.cls_loss == "vfl":
            cls = varifocal_loss(logits, target_scores).sum() / norm
        else:
            cls = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="sum") / norm
        box = dfl = logits.new_zeros(())
        if fg.any():
            weight = target_scores.sum(-1)[fg]
            # IoU is scale-free: compare in stride units so every level weighs the same
            scale = strides[None, :, None].expand_as(pred_boxes)[fg]
            box = (self.box_loss(pred_boxes[fg] / scale, target_boxes[fg] / scale, reduction="none") * weight).sum() / norm
            if bins:
                target_dist = boxes_to_distances(target_boxes, points, strides)[fg]
                dfl = (distribution_focal_loss(bins[0].float()[fg], target_dist) * weight).sum() / norm
        total = self.gains["box"] * box + self.gains["cls"] * cls + self.gains["dfl"] * dfl
        return total, {"box": box.detach(), "cls": cls.detach(), "dfl": dfl.detach()}


def pad_targets(targets: torch.Tensor, batch_size: int):
    """(N, 6) rows -> labels (B, M), boxes (B, M, 4), mask (B, M), M the most boxes in an image."""
    idx = targets[:, 0].long()
    counts = torch.bincount(idx, minlength=batch_size)
    m = int(counts.max()) if len(idx) else 0
    labels = torch.zeros(batch_size, m, dtype=torch.long, device=targets.device)
    boxes = torch.zeros(batch_size, m, 4, device=targets.device)
    mask = torch.zeros(batch_size, m, dtype=torch.bool, device=targets.device)
    if m:
        order = torch.argsort(idx, stable=True)
        idx = idx[order]
        first = torch.cumsum(counts, 0) - counts  # where each image's rows start after sorting
        slot = torch.arange(len(idx), device=targets.device) - first[idx]
        labels[idx, slot] = targets[order, 1].long()
        boxes[idx, slot] = targets[order, 2:6].float()
        mask[idx, slot] = True
    return labels, boxes, mask


def varifocal_loss(logits, target_scores, alpha: float = 0.75, gamma: float = 2.0):
    """Varifocal loss (VarifocalNet): positives weighted by their IoU-aware target, negatives focal."""
    positive = (target_scores > 0).to(logits.dtype)
    weight = alpha * logits.sigmoid().detach().pow(gamma) * (1 - positive) + target_scores * positive
    return F.binary_cross_entropy_with_logits(logits, target_scores, reduction="none") * weight


def distribution_focal_loss(bins: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL (GFL paper): cross-entropy to the two bins around each target distance. (N, 4, R), (N, 4) -> (N,)."""
    r = bins.shape[-1]
    target = target.clamp(0, r - 1 - 0.01)
    left = target.long()
    w_right = target - left
    ce = lambda idx: F.cross_entropy(bins.reshape(-1, r), idx.reshape(-1), reduction="none").view_as(target)  # noqa: E731
    return (ce(left) * (1 - w_right) + ce(left + 1) * w_right).mean(-1)


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017): hardest positive vs hardest negative per anchor."""
    dist = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    hardest_pos = (dist * same).amax(1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(1)
    valid = torch.isfinite(hardest_neg) & (same.sum(1) > 1)
    if not valid.any():
        raise ValueError("a triplet batch needs at least 2 identities with 2 samples each (P x K sampler)")
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


class ArcFaceHead(nn.Module):
    """Additive angular margin classifier (ArcFace) over L2-normalized embeddings; training only."""

    def __init__(self, dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        target = torch.cos(torch.acos(cos) + self.margin)
        one_hot = F.one_hot(labels, cos.shape[1]).bool()
        logits = torch.where(one_hot, target, cos) * self.scale
        return F.cross_entropy(logits, labels)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0):
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)

