"""Accuracy gates on real evaluations: a damaged model is stopped, a sound one passes."""

from __future__ import annotations

import json

import pytest
import torch

from compress_data import train_cfg, trained_lenet, write_quadrant_dataset
from edgecnn.commands import prune as prune_command
from edgecnn.metrics.gate import GateError, check_drop
from edgecnn.models import load_checkpoint, read_checkpoint


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    """(checkpoint, data): LeNet-5 trained to ~100% top-1 on the quadrant data."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gates")
    data = write_quadrant_dataset(root / "quad")
    return trained_lenet(data, root), data


def prune_cfg(ckpt, data, out, **keys) -> dict:
    overrides = {"model": str(ckpt), "out": str(out), "latency": False, "steps": 1, "round_to": 1,
                 **train_cfg(data), **keys}
    return prune_command.KEYS.resolve(overrides)


def test_gate_stops_a_damaged_model(lenet):
    from edgecnn.train.trainer import evaluate

    ckpt, data = lenet
    model, meta = load_checkpoint(ckpt)
    parent = evaluate(model, str(data), train_cfg(data), meta)["top1"]
    assert parent > 0.9  # the parent really learned the task
    assert check_drop("top1", parent, evaluate(model, str(data), train_cfg(data), meta)["top1"], 0.0, "same model") == 0
    with torch.no_grad():
        model[0].weight[3:] = 0  # half the first layer's filters gone
        model[3].weight.mul_(-1)
    damaged = evaluate(model, str(data), train_cfg(data), meta)["top1"]
    with pytest.raises(GateError, match="top1 fell"):
        check_drop("top1", parent, damaged, 1.0, "damaged lenet")


def test_prune_without_fine_tuning_fails_the_gate_and_writes_no_checkpoint(lenet, tmp_path):
    ckpt, data = lenet
    # Local pruning takes every layer down to one or two channels, without fine-tuning; the bound
    # of 0 points fails the gate on the first image the damaged model gets wrong.
    cfg = prune_cfg(ckpt, data, tmp_path, target_macs=0.1, max_layer_ratio=0.95, ft_epochs=0, max_map_drop=0.0,
                    **{"global": False})
    with pytest.raises(GateError, match="top1 fell"):
        prune_command.run(cfg)
    report = json.loads((tmp_path / "prune.json").read_text())
    assert report["gate"]["passed"] is False
    assert report["gate"]["drop_points"] > 0.0
    assert report["after"]["macs"] < 0.5 * report["before"]["macs"]
    assert not (tmp_path / "pruned.pt").exists()


def test_prune_with_fine_tuning_passes_and_saves_a_smaller_checkpoint(lenet, tmp_path):
    ckpt, data = lenet
    result = prune_command.run(prune_cfg(ckpt, data, tmp_path, target_macs=0.6, ft_epochs=2, max_map_drop=5.0))
    assert result["macs_kept"] <= 0.6
    assert result["top1"] >= result["top1_parent"] - 0.05
    pruned, meta = load_checkpoint(result["artifacts"]["model"])
    parent, _ = load_checkpoint(ckpt)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in parent.parameters())
    assert read_checkpoint(result["artifacts"]["model"])["prune"]["config"]["target_macs"] == 0.6
    assert meta["names"] == ["q0", "q1", "q2", "q3"]
    assert (tmp_path / "prune.png").stat().st_size > 1000
