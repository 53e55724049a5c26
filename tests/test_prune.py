"""Structured pruning: MAC goals are met, outputs keep their shapes, pruned models still train,
and a pruned checkpoint loads without torch-pruning installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from edgecnn.compress.prune import ChannelPruner, count_macs_params, output_layers, step_goals
from edgecnn.models import build_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
IMGSZ = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomize_batchnorm(model: nn.Module) -> None:
    """Trained-looking BN layers: a fresh model's identical scales give no channel ranking."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.2, 1.0)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)


def detection_targets() -> torch.Tensor:
    """Rows of (batch index, class, x1, y1, x2, y2) in input pixels."""
    return torch.tensor([[0, 0, 4, 6, 30, 40], [0, 2, 34, 20, 60, 58], [1, 1, 10, 10, 50, 30]], dtype=torch.float32)


def test_detector_pruned_to_half_the_macs_keeps_its_contract_and_trains():
    from edgecnn.train.losses import DetectionLoss

    model = build_model("yolo-n", num_classes=3)
    randomize_batchnorm(model)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    model.eval()
    shapes_before = [o.shape for o in model(x)]
    macs_before, params_before = count_macs_params(model, x[:1])
    protected = {id(m): m.weight.shape[0] for m in model.output_layers()}  # conv or linear outputs

    pruner = ChannelPruner(model, x[:1], criterion="l2")
    macs = pruner.prune_to(0.5 * macs_before)

    assert macs <= 0.5 * macs_before and macs > 0.3 * macs_before
    assert count_macs_params(model, x[:1])[1] < params_before
    model.eval()
    assert [o.shape for o in model(x)] == shapes_before  # (boxes, scores) as before
    assert {id(m): m.weight.shape[0] for m in model.output_layers()} == protected  # their inputs may shrink
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in protected]
    assert all(w % 8 == 0 for w in widths), widths

    loss_fn = DetectionLoss(3, model.strides)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss = loss_fn(model(x), detection_targets(), (IMGSZ, IMGSZ))[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("criterion", ["l1", "bn", "taylor"])
def test_criteria_keep_residuals_and_depthwise_convs_consistent(criterion):
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=4)
    randomize_batchnorm(model)
    x = torch.rand(4, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 3])

    def backward(net):
        nn.functional.cross_entropy(net.train()(x), labels).backward()

    base, _ = count_macs_params(model, x[:1])
    macs = ChannelPruner(model, x[:1], criterion=criterion, compute_gradients=backward).prune_to(0.6 * base)
    assert macs <= 0.6 * base
    assert model.eval()(x).shape == (4, 4)
    for m in model.modules():  # depthwise convs stay depthwise after their channels went
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels


def test_taylor_needs_gradients():
    model = torchvision.models.resnet18(weights=None, num_classes=4)
    with pytest.raises(ValueError, match="taylor"):
        ChannelPruner(model, torch.rand(1, 3, 32, 32), criterion="taylor")


def test_output_layers_are_traced_when_the_model_does_not_declare_them():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1)
            self.branch = nn.Conv2d(16, 16, 3, padding=1)
            self.box = nn.Conv2d(32, 4, 1)
            self.cls = nn.Conv2d(32, 2, 1)

        def forward(self, x):
            x = self.stem(x)
            x = torch.cat([x, self.branch(x) + x], 1)
            return self.box(x).flatten(2), self.cls(x).flatten(2).sigmoid()

    net = TwoHeads()
    assert {id(m) for m in output_layers(net, torch.rand(1, 3, 16, 16))} == {id(net.box), id(net.cls)}
    resnet = torchvision.models.resnet18(weights=None, num_classes=4)
    assert output_layers(resnet, torch.rand(1, 3, 32, 32)) == [resnet.fc]


def test_step_goals_are_geometric_and_reject_bad_targets():
    goals = step_goals(1000, 0.25, 2)
    assert goals == pytest.approx([500.0, 250.0])
    with pytest.raises(ValueError, match="target_macs"):
        step_goals(1000, 1.5, 2)


def test_pruned_checkpoint_loads_without_torch_pruning(tmp_path):
    model = build_model("yolo-n", num_classes=2)
    randomize_batchnorm(model)
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    base, _ = count_macs_params(model, x)
    ChannelPruner(model, x, criterion="l2").prune_to(0.5 * base)
    model.eval()
    with torch.no_grad():
        boxes, scores = model(x)
    ckpt = save_checkpoint(tmp_path / "pruned.pt", model, {"names": ["a", "b"], "imgsz": IMGSZ,
                                                             "mean": [0.0] * 3, "std": [1.0] * 3})
    torch.save({"x": x, "boxes": boxes, "scores": scores}, tmp_path / "expected.pt")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch_pruning"] = None  # any import of torch_pruning now fails
        import torch
        from edgecnn.models import load_checkpoint
        model, meta = load_checkpoint({str(ckpt)!r})
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        with torch.no_grad():
            boxes, scores = model(expected["x"])
        assert "torch_pruning" not in [m for m in sys.modules if sys.modules[m] is not None]
        assert torch.allclose(boxes, expected["boxes"], atol=1e-5), (boxes - expected["boxes"]).abs().max()
        assert torch.allclose(scores, expected["scores"], atol=1e-6)
        print("ok", sum(p.numel() for p in model.parameters()))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")
