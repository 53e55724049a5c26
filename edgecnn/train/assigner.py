"""Anchor points and task-aligned assignment (TAL, as in TOOD and YOLOv8).

TAL picks, for every ground-truth box, the `topk` anchors inside it whose predictions are best
aligned with it (class score^alpha * IoU^beta) and gives them soft class targets proportional to
that alignment. No library ships it for arbitrary detectors, hence this module.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import complete_box_iou_loss


def anchor_points(image_hw: tuple[int, int], strides, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres (A, 2) in input pixels and their strides (A,), as in the output contract.

    Levels follow `strides`; cells run row-major within a level; the centre of cell (x, y) at
    stride s is ((x + 0.5) s, (y + 0.5) s). A level has ceil(H / s) x ceil(W / s) cells, which is
    what stride-2 convolutions with padding produce.
    """
    points, stride_of = [], []
    for s in strides:
        h, w = math.ceil(image_hw[0] / s), math.ceil(image_hw[1] / s)
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        points.append((torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * s)
        stride_of.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(points), torch.cat(stride_of)


def distances_to_boxes(distances: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(…, A, 4) left/top/right/bottom distances in stride units -> xyxy boxes in pixels."""
    d = distances * strides[:, None]
    return torch.cat([points - d[..., :2], points + d[..., 2:]], -1)


def boxes_to_distances(boxes: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Inverse of `distances_to_boxes`."""
    return torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], -1) / strides[:, None]


class TaskAlignedAssigner:
    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9):
        self.topk, self.alpha, self.beta, self.eps = topk, alpha, beta, eps

    @torch.no_grad()
    def __call__(self, scores, boxes, points, gt_labels, gt_boxes, gt_mask):
        """Assign targets to anchors.

        scores (B, A, C) probabilities, boxes (B, A, 4) predicted xyxy pixels, points (A, 2),
        gt_labels (B, M) long, gt_boxes (B, M, 4) xyxy pixels, gt_mask (B, M) bool (padding False).
        Returns target_boxes (B, A, 4), target_scores (B, A, C), foreground (B, A) bool.
        """
        b, a, c = scores.shape
        m = gt_boxes.shape[1]
        if m == 0:
            return torch.zeros_like(boxes), torch.zeros_like(scores), torch.zeros(b, a, dtype=torch.bool, device=scores.device)
        inside = self._inside(points, gt_boxes) & gt_mask[..., None]  # (B, M, A)
        overlaps = torch.zeros(b, m, a, device=scores.device, dtype=boxes.dtype)
        cls_score = torch.zeros_like(overlaps)
        bi, mi, ai = inside.nonzero(as_tuple=True)
        overlaps[bi, mi, ai] = (1 - complete_box_iou_loss(gt_boxes[bi, mi], boxes[bi, ai], reduction="none")).clamp(0)
        cls_score[bi, mi, ai] = scores[bi, ai, gt_labels[bi, mi]].to(overlaps.dtype)
        align = cls_score.pow(self.alpha) * overlaps.pow(self.beta)

        # rank anchors inside the box first, so a box whose alignment is all zero still gets anchors
        top = torch.where(inside, align, -1.0).topk(min(self.topk, a), dim=-1).indices
        candidates = torch.zeros_like(inside).scatter_(-1, top, True) & inside
        # an anchor claimed by several boxes goes to the one it overlaps most
        multi = candidates.sum(1, keepdim=True) > 1
        best = torch.zeros_like(candidates).scatter_(1, overlaps.argmax(1, keepdim=True), True)
        positive = torch.where(multi, best & inside, candidates)

        foreground = positive.any(1)
        gt_index = positive.float().argmax(1)  # (B, A)
        batch = torch.arange(b, device=scores.device)[:, None]
        target_boxes = gt_boxes[batch, gt_index]
        target_labels = gt_labels[batch, gt_index]
        target_scores = torch.nn.functional.one_hot(target_labels, c).to(scores.dtype) * foreground[..., None]

        align = align * positive
        norm = align * overlaps.mul(positive).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + self.eps)
        target_scores = target_scores * norm.amax(1)[..., None].to(target_scores.dtype)
        return target_boxes, target_scores, foreground

    def _inside(self, points, gt_boxes):
        lt = points[None, None] - gt_boxes[..., None, :2]
        rb = gt_boxes[..., None, 2:] - points[None, None]
        return torch.cat([lt, rb], -1).amin(-1) > self.eps
