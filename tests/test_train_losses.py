"""Detection loss and task-aligned assignment against the output contract, plus the metric-learning losses."""

import numpy as np
import pytest
import torch
from torch import nn

from edgecnn.runtime.postprocess import make_anchors
from edgecnn.train.assigner import TaskAlignedAssigner, anchor_points, boxes_to_distances, distances_to_boxes
from edgecnn.train.losses import ArcFaceHead, DetectionLoss, batch_hard_triplet_loss, pad_targets

STRIDES = (8, 16, 32)


class TinyDetector(nn.Module):
    """Stand-in with the contract's training output: distances, logits and optional DFL bins."""

    def __init__(self, num_classes: int, bins: int = 0):
        super().__init__()
        self.bins = bins
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.down = nn.ModuleList([nn.Identity(), nn.Conv2d(32, 32, 3, 2, 1),
                                   nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.Conv2d(32, 32, 3, 2, 1))])
        self.box = nn.Conv2d(32, 4 * (bins or 1), 1)
        self.cls = nn.Conv2d(32, num_classes, 1)
        nn.init.constant_(self.cls.bias, -4.0)

    def forward(self, x):
        f = self.stem(x)
        levels = [d(f) for d in self.down]
        box = torch.cat([self.box(g).flatten(2).transpose(1, 2) for g in levels], 1)
        cls = torch.cat([self.cls(g).flatten(2).transpose(1, 2) for g in levels], 1)
        if self.bins:
            bins = box.view(*box.shape[:2], 4, self.bins)
            return (bins.softmax(-1) * torch.arange(self.bins, dtype=torch.float32)).sum(-1), cls, bins
        return nn.functional.softplus(box), cls


def test_anchor_points_match_the_runtime_decoder():
    points, strides = anchor_points((96, 160), STRIDES)
    ref_points, ref_strides = make_anchors((96, 160), STRIDES)
    np.testing.assert_array_equal(points.numpy(), ref_points)
    np.testing.assert_array_equal(strides.numpy(), ref_strides)
    dist = torch.rand(len(points), 4) * 3
    np.testing.assert_allclose(boxes_to_distances(distances_to_boxes(dist, points, strides), points, strides), dist, atol=1e-5)


def test_pad_targets_groups_rows_by_image():
    targets = torch.tensor([[1, 2, 0, 0, 5, 5], [0, 1, 1, 1, 4, 4], [1, 0, 2, 2, 8, 8.0]])
    labels, boxes, mask = pad_targets(targets, 3)
    assert labels.shape == (3, 2) and mask.tolist() == [[True, False], [True, True], [False, False]]
    assert labels[1].tolist() == [2, 0] and boxes[1, 1].tolist() == [2, 2, 8, 8]


def test_assigner_picks_anchors_inside_the_box_with_soft_targets():
    points, _ = anchor_points((64, 64), STRIDES)
    a = len(points)
    gt = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])
    pred = gt[:, :, None].expand(1, 1, a, 4).reshape(1, a, 4) + torch.randn(1, a, 4)
    scores = torch.full((1, a, 3), 0.3)
    boxes, target_scores, fg = TaskAlignedAssigner(topk=5)(scores, pred, points, torch.tensor([[2]]), gt, torch.tensor([[True]]))
    assert fg.sum() == 5
    inside = (points[fg[0]] > 8).all(1) & (points[fg[0]] < 40).all(1)
    assert inside.all()
    assert (target_scores[0, fg[0], 2] > 0).all() and target_scores[0, :, :2].sum() == 0
    assert target_scores[0, fg[0], 2].max() <= 1 + 1e-6  # normalized by the best IoU of the box
    assert torch.equal(boxes[0, fg[0]], gt[0].expand(5, 4))


@pytest.mark.parametrize("bins,cls_loss,box_loss", [(0, "bce", "ciou"), (8, "vfl", "giou"), (16, "bce", "ciou")])
def test_detection_loss_overfits_one_batch(bins, cls_loss, box_loss):
    torch.manual_seed(0)
    model = TinyDetector(3, bins)
    criterion = DetectionLoss(3, STRIDES, box_loss=box_loss, cls_loss=cls_loss)
    x = torch.rand(2, 3, 64, 96)
    targets = torch.tensor([[0, 1, 10, 10, 40, 50], [0, 2, 50, 5, 90, 60], [1, 0, 20, 20, 30, 30.0]])
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(60):
        loss, parts = criterion(model(x), targets, (64, 96))
        first = first if first is not None else {k: float(v) for k, v in parts.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts["box"] < first["box"] * 0.6
    assert parts["cls"] < first["cls"]
    assert (parts["dfl"] < first["dfl"]) if bins else parts["dfl"] == 0


def test_detection_loss_without_boxes_and_bad_shapes():
    model = TinyDetector(2)
    criterion = DetectionLoss(2, STRIDES)
    loss, parts = criterion(model(torch.rand(1, 3, 64, 64)), torch.zeros(0, 6), (64, 64))
    assert torch.isfinite(loss) and parts["box"] == 0 and parts["cls"] > 0
    loss.backward()
    with pytest.raises(ValueError, match="anchors"):
        criterion(model(torch.rand(1, 3, 64, 64)), torch.zeros(0, 6), (96, 64))
    with pytest.raises(ValueError, match="classes"):
        DetectionLoss(5, STRIDES)(model(torch.rand(1, 3, 64, 64)), torch.zeros(0, 6), (64, 64))


def test_batch_hard_triplet_and_arcface():
    labels = torch.tensor([0, 0, 1, 1])
    separated = nn.functional.normalize(torch.tensor([[1, 0.0], [1, 0.05], [-1, 0.0], [-1, 0.05]]))
    mixed = nn.functional.normalize(torch.tensor([[1, 0.0], [-1, 0.0], [1, 0.05], [-1, 0.05]]))
    assert batch_hard_triplet_loss(separated, labels, margin=0.3) == 0
    assert batch_hard_triplet_loss(mixed, labels, margin=0.3) > 1.5
    with pytest.raises(ValueError, match="P x K"):
        batch_hard_triplet_loss(separated, torch.tensor([0, 1, 2, 3]))
    head = ArcFaceHead(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0], [-1, 0]]))
    assert head(separated, labels) < head(separated, 1 - labels)
