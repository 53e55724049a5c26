"""Structured channel pruning with torch-pruning: remove whole channels until the MACs meet a goal.

torch-pruning's DependencyGraph finds every layer coupled to a channel (residual adds, concats,
depthwise convs, the detector's neck and head), so removing a channel keeps the model consistent.
The layers that produce the model's outputs keep their widths (they are fixed by the output
contract), and the input image channels are never pruned (nothing produces them inside the model).

`target_macs` everywhere in edgecnn is the fraction of the parent's MACs to KEEP: 0.5 means the
pruned model does half the multiply-accumulates of its parent.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from edgecnn.compress import PRUNING_CRITERIA
from edgecnn.models.contract import DeclaresOutputLayers, Prunable

LOG = logging.getLogger(__name__)

OUTPUT_OPS = ("ConvolutionBackward", "AddmmBackward", "MmBackward", "LinearBackward")
# Each prune_to() call walks the channel budget in this many small steps and stops at the goal.
SUB_STEPS = 100
# The schedule's last step removes this fraction of all channels; each layer still stops at
# max_layer_ratio. Channels are not MACs (a classifier's wide FC layers hold many cheap ones),
# so the walk may need to go past max_layer_ratio overall to reach a MAC goal.
SCHEDULE_END = 0.95


def make_importance(criterion: str) -> tp.importance.Importance:
    """The channel-importance score for `criterion` (see PRUNING_CRITERIA); Taylor needs gradients."""
    if criterion == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if criterion == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if criterion == "bn":
        return tp.importance.BNScaleImportance()
    if criterion == "taylor":
        return tp.importance.TaylorImportance()
    raise ValueError(f"unknown pruning criterion '{criterion}'; use one of {', '.join(PRUNING_CRITERIA)}")


def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The layers whose output widths the model's outputs depend on.

    A model may declare them (`model.output_layers()`, as the detector does for its box, class
    and DFL convs); otherwise they are found by walking the autograd graph back from each output
    to the first convolution or linear layer on every path.
    """
    if isinstance(model, DeclaresOutputLayers):
        return list(model.output_layers())
    owner = {id(p): m for m in model.modules() for p in m.parameters(recurse=False)}
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        outputs = model(example)
    model.train(was_training)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    stack = [o.grad_fn for o in outputs if isinstance(o, torch.Tensor) and o.grad_fn is not None]
    found: list[nn.Module] = []
    seen = set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        inputs = [f for f, _ in fn.next_functions if f is not None]
        if type(fn).__name__.startswith(OUTPUT_OPS):
            layers = [owner[id(f.variable)] for f in inputs if id(getattr(f, "variable", None)) in owner]
            if layers:
                found.extend(m for m in layers[:1] if m not in found)
                continue
        stack.extend(inputs)
    return found


def count_macs_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulates of the convolutions and linear layers in one forward pass on
    `example` (everything else is ~1% of a CNN), and the parameter count.

    Counted with forward hooks on the model itself: torch-pruning's counter deep-copies the
    model on every call, which made it most of the cost of a pruning run.
    """
    macs = 0

    def hook(layer, inputs, output):
        nonlocal macs
        if isinstance(layer, nn.modules.conv._ConvNd):
            per_output = layer.weight[0].numel()  # (in_channels / groups) x kernel area
        else:
            per_output = layer.in_features
        macs += output.numel() // output.shape[0] * per_output

    layers = [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(macs), sum(p.numel() for p in model.parameters())


class ChannelPruner:
    """Removes the least important channels of a model, in place, until its MACs meet a goal.

    `global_pruning` ranks channels across all layers (layers that matter less lose more);
    `max_layer_ratio` caps how much of any one layer goes; `round_to` keeps widths multiples of
    8, which int8 kernels (XNNPACK, TensorRT) run fastest. `compute_gradients`, needed by the
    Taylor criterion, runs a forward and backward pass of the training loss on the model.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, criterion: str = "l2", global_pruning: bool = True,
                 round_to: int | None = 8, max_layer_ratio: float = 0.8,
                 compute_gradients: Callable[[nn.Module], None] | None = None):
        if criterion == "taylor" and compute_gradients is None:
            raise ValueError("the taylor criterion needs compute_gradients (a forward/backward pass of the loss)")
        if isinstance(model, Prunable):  # a model with a form torch-pruning cannot follow changes to one it can
            model.make_prunable()
        self.model, self.example = model, example
        self.importance = make_importance(criterion)
        self.global_pruning, self.round_to, self.max_layer_ratio = global_pruning, round_to, max_layer_ratio
        self.compute_gradients = compute_gradients if criterion == "taylor" else None
        self.protected = output_layers(model, example)

    def prune_to(self, macs_goal: float) -> int:
        """Prune until MACs <= `macs_goal` (or nothing more can go); returns the MACs reached.

        The dependency graph is rebuilt on every call: fine-tuning in between changes weights,
        and torch-pruning's schedule is relative to the widths it starts from.
        """
        was_training = self.model.training
        self.model.eval()
        macs, _ = count_macs_params(self.model, self.example)
        pruner = tp.pruner.BasePruner(
            self.model, self.example, importance=self.importance, global_pruning=self.global_pruning,
            pruning_ratio=SCHEDULE_END, max_pruning_ratio=self.max_layer_ratio,
            iterative_steps=SUB_STEPS, ignored_layers=self.protected, round_to=self.round_to,
        )
        # Jump to ~60% of the channel ratio the goal needs (MACs shrink about as the square of
        # the widths), then walk in single steps: far fewer scoring passes than stepping from 0.
        needed = 1.0 - (min(macs_goal, macs) / macs) ** 0.5
        pruner.current_step = max(int(0.6 * needed / SCHEDULE_END * SUB_STEPS) - 1, 0)
        while macs > macs_goal and pruner.current_step < SUB_STEPS:
            if self.compute_gradients is not None:
                self.model.zero_grad(set_to_none=True)
                self.compute_gradients(self.model)
            pruner.step()
            macs, _ = count_macs_params(self.model, self.example)
        self.model.zero_grad(set_to_none=True)
        self.model.train(was_training)
        if macs > macs_goal:
            LOG.warning("pruning stopped at %.3g MACs, above the goal %.3g: nothing more can go without "
                        "exceeding max_layer_ratio=%s in some layer", macs, macs_goal, self.max_layer_ratio)
        return macs


def step_goals(base_macs: int, keep: float, steps: int) -> list[float]:
    """The MACs to reach after each of `steps` prune → fine-tune rounds: a geometric schedule,
    so every round removes the same fraction of what is left (gentler than equal MAC cuts)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"target_macs must be in (0, 1] (the fraction of MACs to keep), got {keep}")
    return [base_macs * keep ** ((i + 1) / steps) for i in range(steps)]
