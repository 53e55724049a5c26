"""A Q/DQ (QAT) ONNX as its float graph, for converters that mis-convert Q/DQ pairs (onnx2tf)."""

from __future__ import annotations

import numpy as np


def strip_qdq(model):
    """The float graph of a Q/DQ (QAT) ONNX: each activation QuantizeLinear→DequantizeLinear pair
    becomes a Clip to its quantization range.

    onnx2tf mis-converts Q/DQ graphs (0.4 off on a tiny detector's boxes in fp32, where the
    float graph is 0.002 off), so we convert the float graph with the QAT weights and calibrate
    again. The Clip keeps what the pair did besides rounding: quantizers fold ReLUs into their
    range, and calibration then sees activations inside the learned ranges. DequantizeLinear of
    constant weights is folded into float weights (onnx2tf lays computed conv weights out wrong).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(name in consts for name in node.input):
            graph.initializer.append(numpy_helper.from_array(_dequantize(node, consts), node.output[0]))
            continue
        q = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or q.input[1] not in consts:
            nodes.append(node)
            continue
        if q.input[0] in consts:  # fake-quantized weights: fold to float weights on the int8 grid
            graph.initializer.append(numpy_helper.from_array(_fake_quantize(q, consts), node.output[0]))
            continue
        low, high = np.float32(-np.inf), np.float32(np.inf)  # per-channel activation ranges (rare): no clip
        if consts[q.input[1]].size == 1:
            scale, zero = _scale_zero(q, consts, 0)
            info = np.iinfo(zero.dtype)
            low, high = (info.min - zero.astype(np.float32)) * scale, (info.max - zero.astype(np.float32)) * scale
        names = [f"{node.output[0]}_clip_min", f"{node.output[0]}_clip_max"]
        graph.initializer.extend(numpy_helper.from_array(np.float32(v).reshape(()), n) for v, n in zip((low, high), names))
        nodes.append(helper.make_node("Clip", [q.input[0], *names], [node.output[0]], name=f"{node.name}_as_clip"))
    used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.op_type != "QuantizeLinear" or set(n.output) & used]
    del graph.node[:]
    graph.node.extend(nodes)
    used |= {name for node in nodes for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


def _scale_zero(node, consts: dict[str, np.ndarray], ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """A Q/DQ node's scale and zero point, shaped to broadcast along its `axis` (default 1)."""
    scale = consts[node.input[1]].astype(np.float32)
    zero = consts[node.input[2]] if len(node.input) > 2 and node.input[2] in consts else np.zeros((), np.uint8)
    if scale.size > 1:
        shape = [1] * ndim
        shape[next((a.i for a in node.attribute if a.name == "axis"), 1)] = -1
        return scale.reshape(shape), zero.reshape(shape)
    return scale, zero


def _dequantize(node, consts: dict[str, np.ndarray]) -> np.ndarray:
    """DequantizeLinear of constants."""
    values = consts[node.input[0]]
    scale, zero = _scale_zero(node, consts, values.ndim)
    return (values.astype(np.float32) - zero.astype(np.float32)) * scale


def _fake_quantize(q, consts: dict[str, np.ndarray]) -> np.ndarray:
    """DequantizeLinear(QuantizeLinear(x)) of a constant x, as float32."""
    values = consts[q.input[0]].astype(np.float32)
    scale, zero = _scale_zero(q, consts, values.ndim)
    info = np.iinfo(zero.dtype)
    zero = zero.astype(np.float32)
    return ((np.clip(np.round(values / scale) + zero, info.min, info.max) - zero) * scale).astype(np.float32)
