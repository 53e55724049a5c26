"""Optimizer groups, schedules and EMA."""

import pytest
import torch
from torch import nn

from edgecnn.train.ema import ModelEMA
from edgecnn.train.keys import AUGMENT_KEYS
from edgecnn.train.optim import OPTIMIZERS, build_optimizer, build_scheduler, lr_factor


def test_no_weight_decay_on_norm_layers_and_biases():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    opt = build_optimizer(net, "sgd", 0.1, weight_decay=0.05)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(net[0].weight), id(net[3].weight)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps(name):
    net = nn.Linear(4, 2)
    opt = build_optimizer(net, name, 0.01)
    before = net.weight.detach().clone()
    net(torch.randn(8, 4)).pow(2).sum().backward()
    opt.step()
    assert not torch.equal(before, net.weight)


def test_finetune_scale_applies_to_named_parameters():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    opt = build_optimizer(net, "adamw", 0.01, scaled={"0.weight", "0.bias"}, scale=0.1)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(net[0].weight)] == pytest.approx(0.001) and lrs[id(net[1].weight)] == pytest.approx(0.01)


def test_warmup_then_cosine_and_step():
    f = lr_factor("cosine", epochs=10, steps_per_epoch=10, warmup_epochs=1, lrf=0.01, step_size=3, gamma=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(99) == pytest.approx(0.01, abs=1e-3)
    assert f(55) < f(30) < f(10)
    step = lr_factor("step", epochs=10, steps_per_epoch=10, warmup_epochs=0, lrf=0.01, step_size=3, gamma=0.1)
    assert step(29) == 1.0 and step(30) == pytest.approx(0.1) and step(65) == pytest.approx(0.01)
    net = nn.Linear(2, 2)
    opt = build_optimizer(net, "sgd", 0.1)
    sched = build_scheduler(opt, "linear", 2, 5, warmup_epochs=0, lrf=0.5)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_ema_tracks_weights_with_ramped_decay():
    net = nn.Linear(2, 1, bias=False)
    ema = ModelEMA(net, decay=0.9, tau=1.0)
    with torch.no_grad():
        net.weight.fill_(1.0)
    start = ema.module.weight.detach().clone()
    ema.update(net)
    d = 0.9 * (1 - torch.exp(torch.tensor(-1.0)))
    expected = start * d + (1 - d) * 1.0
    torch.testing.assert_close(ema.module.weight, expected)
    copy = ModelEMA(net)
    copy.load_state_dict(ema.state_dict())
    assert copy.updates == 1 and torch.equal(copy.module.weight, ema.module.weight)


def test_augment_keys_match_the_augment_config():
    from edgecnn.data.augment import AugmentConfig

    assert tuple(AugmentConfig.__dataclass_fields__) == AUGMENT_KEYS
