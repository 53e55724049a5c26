"""Int8 quantization-aware training with NNCF: fold BN, calibrate, fine-tune, export Q/DQ ONNX.

What NNCF 3.4's PyTorch API does (learned from its source, not obvious from the docs):

- `nncf.quantize(torch_model, ...)` neither uses torch.fx nor `torch.export`, nor the classic
  NNCFNetwork of NNCF 2.x: it deep-copies the model, wraps its `forward` (function hooks
  through `__torch_function__`) and adds the fake quantizers as hook modules under the
  attribute `__nncf_hooks`. The result is the same class as the input, trainable as usual;
  quantizer scales are `nn.Parameter`s, so fine-tuning learns them too (LSQ-style).
- It quantizes each conv/linear weight (pre-hook on the weight input) and the activations
  after Conv → BN → ReLU patterns; it never puts a quantizer between a conv and its BN, but it
  does not fold BN either. With BN in training mode QAT would quantize W while the deployed
  int8 conv uses W·γ/σ_running. We therefore fold BN into the conv before quantizing
  (`fold_batchnorm`), leaving an identity-scale BN that only adds the folded bias and never
  switches to batch statistics: what is trained is what the int8 graph computes.
- `fast_bias_correction=False` is not supported by the torch backend (ValueError).
- The first quantizer call compiles a C++ CPU extension (~20 s, cached under
  ~/.cache/torch_extensions, shared by every venv with the same torch); without a compiler NNCF
  falls back to slower torch ops. NNCF gives the load 60 s and then fails; on a busy machine, or
  while another venv rebuilds it, that is too little, so `quantize` raises the default to 600 s.
- `nncf.strip(..., StripFormat.NATIVE)` needs torchao (not in our lock), and
  `StripFormat.IN_PLACE` only handles post-hooks, while quantize() puts weight quantizers on
  pre-hooks. We need neither: ONNX export runs under the TorchScript tracer, where NNCF's
  quantizers emit their own symbolic; in `ONNX_QUANTIZE_DEQUANTIZE_PAIRS` mode that is standard
  QuantizeLinear/DequantizeLinear (per-channel with `axis` for weights).
- Save/restore: `nncf.torch.get_config(qmodel)` (plain data, JSON-able) plus the hook tensors
  of `state_dict()`; `nncf.torch.load_from_config(model, config)` re-inserts the quantizers.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

LOG = logging.getLogger(__name__)
HOOKS_PREFIX = "__nncf_hooks."


class FoldedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm whose statistics were folded into the conv before it: it always applies its
    running statistics (μ=0, σ=1), also in training mode, so what is left is a per-channel
    affine (γ starts at 1, β is the folded bias). A per-channel scale after a conv with
    per-channel symmetric int8 weights folds into the weight scales exactly, so QAT trains the
    arithmetic of the deployed int8 conv + bias. Same state_dict keys as nn.BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Conv2d, str, nn.BatchNorm2d]]:
    """(conv name, conv, bn name, bn) for every BatchNorm2d whose input is exactly a conv's output
    and that conv feeds no other module, found by running the model (not by guessing from names)."""
    names = {m: n for n, m in model.named_modules()}
    producer: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}  # holding the tensor keeps its id unique
    consumers: dict[nn.Conv2d, int] = {}
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []

    def conv_hook(conv, _inputs, output):
        producer[id(output)] = (conv, output)

    def any_pre_hook(module, inputs):
        for t in inputs:
            conv = producer.get(id(t), (None,))[0] if isinstance(t, torch.Tensor) else None
            if conv is not None:
                consumers[conv] = consumers.get(conv, 0) + 1
                if isinstance(module, nn.BatchNorm2d) and type(module) is nn.BatchNorm2d:
                    pairs.append((conv, module))

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_pre_hook(any_pre_hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [(names[c], c, names[b], b) for c, b in dict(pairs).items() if consumers[c] == 1]


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every conv → BN pair in place (W ← W·γ/σ, BN → FoldedBatchNorm2d with γ=1, μ=0,
    σ²=1-ε, β ← β-μγ/σ); returns how many. The model computes the same function in eval mode
    and keeps its state_dict keys, so the result still loads as an ordinary checkpoint."""
    pairs = conv_bn_pairs(model, example)
    for _, conv, bn_name, bn in pairs:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
        shift = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            shift = shift + conv.bias * scale
            conv.bias.zero_()
        bn.weight.fill_(1.0)
        bn.bias.copy_(shift)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        _replace_with_folded(model, bn_name, bn)
    return len(pairs)


def freeze_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Make the BNs after convs FoldedBatchNorm2d as they are, values unchanged (a QAT model
    being restored: its BNs were folded before training and may have learned a scale since)."""
    pairs = conv_bn_pairs(model, example)
    for _, _, bn_name, bn in pairs:
        _replace_with_folded(model, bn_name, bn)
    return len(pairs)


def _replace_with_folded(model: nn.Module, name: str, bn: nn.BatchNorm2d) -> None:
    folded = FoldedBatchNorm2d(bn.num_features, eps=bn.eps).to(bn.weight.device)
    folded.load_state_dict(bn.state_dict())
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attr, folded)


def calibration_tensors(files: Iterable[Path], imgsz, mean: Iterable[float], std: Iterable[float]) -> list[torch.Tensor]:
    """Images as the model sees them: letterboxed RGB in [0, 1] normalized with the
    checkpoint's mean/std, one (1, 3, h, w) tensor each."""
    from edgecnn.data.loaders import letterboxed_tensor
    from edgecnn.train.tasks import to_input

    return [to_input(letterboxed_tensor(Path(f), imgsz)[0].unsqueeze(0), "cpu", list(mean), list(std), False) for f in files]


def quantize(model: nn.Module, calibration: list[torch.Tensor], subset_size: int = 300,
             float_patterns: list[str] | None = None) -> nn.Module:
    """PTQ with NNCF: a copy of `model` (BN already folded) with int8 fake quantizers placed and
    their ranges calibrated. TFLite int8's scheme: symmetric per-channel weights, per-tensor
    activations (symmetric ranges are a subset of TFLite's asymmetric int8 activations).
    `float_patterns`: regexes of NNCF node names left in float (to find which layers int8 hurts)."""
    import nncf
    from nncf.common.quantization.structs import QuantizationScheme
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")
    params = AdvancedQuantizationParameters(
        weights_quantization_params=QuantizationParameters(per_channel=True, mode=QuantizationScheme.SYMMETRIC),
        activations_quantization_params=QuantizationParameters(per_channel=False),
    )
    qmodel = nncf.quantize(
        hook_safe(model).eval(), nncf.Dataset(calibration), preset=nncf.QuantizationPreset.PERFORMANCE,
        target_device=nncf.TargetDevice.CPU, subset_size=min(subset_size, len(calibration)),
        fast_bias_correction=True, advanced_parameters=params,
        ignored_scope=nncf.IgnoredScope(patterns=float_patterns, validate=False) if float_patterns else None,
    )
    return integer_parameters_to_buffers(qmodel)


class HookSafeSequential(nn.Sequential):
    """nn.Sequential that runs only its layers: NNCF adds its hooks as a child module
    (`__nncf_hooks`), which a plain Sequential's forward would call as a layer."""

    def forward(self, x):
        for name, layer in self._modules.items():
            if name != HOOKS_PREFIX[:-1]:
                x = layer(x)
        return x


def hook_safe(model: nn.Module) -> nn.Module:
    """A Sequential root model (LeNet-5, for one) becomes a HookSafeSequential, in place: same
    layers, attributes and state_dict keys."""
    if type(model) is nn.Sequential:
        model.__class__ = HookSafeSequential
    return model


def integer_parameters_to_buffers(qmodel: nn.Module) -> nn.Module:
    """NNCF keeps each quantizer's bit width and signedness as int32 `nn.Parameter`s; a training
    loop that sets requires_grad on every parameter fails on them. As buffers they keep their
    state_dict keys and NNCF reads them the same way."""
    for module in qmodel.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and not param.is_floating_point():
                del module._parameters[name]
                module.register_buffer(name, param.data)
    return qmodel


def weight_quantizers(qmodel: nn.Module, example: torch.Tensor) -> dict[str, nn.Module]:
    """The state_dict key of each quantized weight → its quantizer module.

    Hook names carry the op's call scope ("head/0/conv/conv2d/3"), not the weight's name (a
    ModuleList called in a loop shares one scope), so the weight is looked up in NNCF's graph,
    as `nncf.strip` does.
    """
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.model_graph_manager import get_const_node

    graph = build_nncf_graph(qmodel, example)
    found = {}
    for hook_name, quantizer in get_hook_storage(qmodel).named_hooks():
        hook_type, op_name, port = decode_hook_name(hook_name)
        if hook_type != "pre_hooks":
            continue
        const = get_const_node(graph.get_node_by_name(op_name), port, graph)
        if const is not None:
            found[const.layer_attributes.name] = quantizer
    return found


@torch.no_grad()
def deployed_state_dict(qmodel: nn.Module, example: torch.Tensor) -> dict[str, torch.Tensor]:
    """The plain model's state_dict with every weight replaced by its int8-grid value (what the
    quantizer makes of it): a float model that re-quantizes to the same integers."""
    was_training = qmodel.training
    qmodel.eval()
    state = {k: v.detach().clone() for k, v in qmodel.state_dict().items() if not k.startswith(HOOKS_PREFIX)}
    for key, quantizer in weight_quantizers(qmodel, example).items():
        state[key] = quantizer(state[key])
    qmodel.train(was_training)
    return state


def quantization_state(qmodel: nn.Module) -> dict[str, Any]:
    """What rebuilds the quantizers on the plain model, in types `torch.load(weights_only=True)`
    reads: NNCF's placement config as JSON text, and the quantizers' tensors."""
    import nncf.torch

    return {
        "nncf_config": json.dumps(nncf.torch.get_config(qmodel)),
        "state_dict": {k: v.detach().clone() for k, v in qmodel.state_dict().items() if k.startswith(HOOKS_PREFIX)},
    }


def restore_quantized(model: nn.Module, quant_state: dict[str, Any], example: torch.Tensor) -> nn.Module:
    """The QAT model from a plain model with deployed weights and `quantization_state`; NNCF
    wraps `model` in place, so the result is `model` itself, quantizers attached."""
    import nncf.torch

    freeze_batchnorm(model, example)
    config = json.loads(quant_state["nncf_config"])
    qmodel = integer_parameters_to_buffers(nncf.torch.load_from_config(hook_safe(model), config))
    state = qmodel.state_dict()
    state.update(quant_state["state_dict"])
    qmodel.load_state_dict(state)
    return qmodel


def export_qdq_onnx(qmodel: nn.Module, meta: dict[str, Any], path: str | os.PathLike, imgsz) -> Path:
    """ONNX with standard QuantizeLinear/DequantizeLinear pairs around weights and activations."""
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    from edgecnn.export.onnx import export_onnx

    for _, quantizer in get_hook_storage(qmodel).named_hooks():
        if isinstance(quantizer, BaseQuantizer):
            quantizer.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    with warnings.catch_warnings():
        # NNCF reads its integer levels with .item() while tracing; they are constants, as intended
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return export_onnx(qmodel, meta, path, imgsz=imgsz)
