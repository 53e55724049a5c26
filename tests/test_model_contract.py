"""Every registered model against the contract (models/contract.py): its record, and each hook
it defines doing what the stages that call it rely on."""

from __future__ import annotations

import copy

import pytest
import torch

from edgecnn.models import build_model, get_entry, list_models
from edgecnn.models.contract import (
    HOOKS, TASKS, DeclaresOutputLayers, Exportable, Freezable, ModelConfig, Prunable, Strided,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model built for a small input of its task, in eval mode, and that input."""
    entry = get_entry(name)
    hw = {"classify": (32, 32), "detect": (64, 64)}.get(entry.task, entry.imgsz)
    kwargs = {"num_classes": 3} if entry.accepts("num_classes") and entry.task != "embed" else {}
    if entry.accepts("in_channels"):
        kwargs["in_channels"] = 3  # as the trainer builds them: the loaders feed RGB
    model = build_model(name, imgsz=hw, **kwargs).eval()
    return model, torch.rand(1, 3, *hw)


def outputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model.eval()(x)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", list_models())
def test_registered_model_keeps_the_contract(name):
    record = get_entry(name).config
    assert isinstance(record, ModelConfig) and record.task in TASKS
    assert len(record.imgsz) == 2 and all(isinstance(v, int) and v > 0 for v in record.imgsz)
    model, x = small(name)
    assert model.task == record.task and model.arch["name"] == name
    # a detector states its strides in the record, and the built model carries the same
    assert isinstance(model, Strided) == bool(record.strides) == (record.task == "detect")
    if record.strides:
        assert tuple(model.strides) == record.strides
    # pruning leaves the declared layers when the record says so, and traces them otherwise
    assert isinstance(model, DeclaresOutputLayers) == (record.prune_keep == "declared")
    if isinstance(model, DeclaresOutputLayers):
        modules = set(map(id, model.modules()))
        assert model.output_layers() and all(id(m) in modules for m in model.output_layers())
    reference = outputs(model, x)
    if isinstance(model, Exportable):  # an equivalent copy; the model itself unchanged
        exported = model.for_export()
        assert exported is not model
        for a, b in zip(outputs(exported, x), reference):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    if isinstance(model, Freezable):
        prefixes = model.freeze_prefixes("backbone")
        names = [n for n, _ in model.named_parameters()]
        assert prefixes and all(any(n.startswith(p) for n in names) for p in prefixes)
    if isinstance(model, Prunable):  # the same function in the prunable form, recorded in `arch`
        before = copy.deepcopy(model.arch)
        model.make_prunable()
        for a, b in zip(outputs(model, x), reference):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        assert model.arch != before
        rebuilt = build_model(name, **model.arch["kwargs"])
        rebuilt.load_state_dict(model.state_dict())  # the checkpoint rebuilds in this form


def test_hooks_are_protocols_the_stages_can_check():
    assert all(getattr(hook, "_is_runtime_protocol", False) for hook in HOOKS)
    assert not isinstance(torch.nn.Linear(2, 2), tuple(HOOKS))


def test_the_record_rejects_what_the_stages_cannot_use():
    with pytest.raises(ValueError, match="task"):
        ModelConfig("colorize", (32, 32))
    with pytest.raises(ValueError, match="prune_keep"):
        ModelConfig("classify", (32, 32), prune_keep="some")
    with pytest.raises(ValueError, match="std"):
        ModelConfig("classify", (32, 32), std=(0.0, 1.0, 1.0))
