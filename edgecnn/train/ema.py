"""Exponential moving average of weights, with YOLOv5/v8's warm-up of the decay.

torch.optim.swa_utils.AveragedModel averages with a fixed decay; early in short runs that keeps
the EMA stuck near the random init, so the decay ramps up as `decay * (1 - exp(-updates / tau))`.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                own[name].lerp_(value.detach(), 1 - d)
            else:
                own[name].copy_(value)

    def state_dict(self) -> dict:
        return {"state_dict": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["state_dict"])
        self.updates = int(state["updates"])
