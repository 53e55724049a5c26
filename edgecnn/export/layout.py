"""Make a graph's layouts unambiguous for onnx2tf: no conv output with C == H == W.

onnx2tf decides per tensor whether it is NCHW or NHWC from its shape; a (1, C, H, W) tensor with
C == H == W (80 classes on the 80x80 stride-8 grid of a 640 detector) gets the wrong one and the
TFLite model computes garbage. We give each such conv one extra all-zero output channel, carry it
through ReLU-like ops into the next conv (zero input weights) or into a flattening Reshape, and
slice it off after the Reshape, where the tensor is 3-D. The function is unchanged.
"""

from __future__ import annotations

import numpy as np

ELEMENTWISE = {"Relu", "LeakyRelu", "Sigmoid", "Clip", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus",
               "Tanh", "Identity"}


def cube_shapes(model) -> dict[str, list[int]]:
    """Tensor name → shape of every 4-D (1, C, H, W) tensor with C == H == W."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
        if len(dims) == 4 and dims[1] == dims[2] == dims[3] > 1:
            shapes[info.name] = dims
    return shapes


def pad_cube_convs(model):
    """(a copy of `model` without cube-shaped conv outputs, how many convs were widened).

    Raises ValueError naming the tensor when a cube reaches an op this rewrite does not handle.
    """
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    cubes = cube_shapes(model)
    weights = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    padded, extra_nodes = 0, []
    for node in list(graph.node):
        if node.op_type != "Conv" or node.output[0] not in cubes:
            continue
        if any(a.name == "group" and a.i != 1 for a in node.attribute) or node.input[1] not in weights:
            raise ValueError(f"cannot widen {node.name}: grouped conv or computed weights")
        _widen_input(graph, weights, node, 1, 0)
        if len(node.input) > 2:
            _widen_input(graph, weights, node, 2, 0)
        extra_nodes += _widen_users(graph, weights, consumers, graph_outputs, node.output[0], cubes[node.output[0]][1])
        padded += 1
    for reshape, slice_node in extra_nodes:
        index = list(graph.node).index(reshape)
        graph.node.insert(index + 1, slice_node)
    del graph.value_info[:]  # inferred shapes of the widened tensors are stale
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model, padded


def _widen_input(graph, weights: dict, node, index: int, axis: int) -> None:
    """Give `node` its own copy of input `index` with one zero slice more along `axis`
    (onnxslim shares equal constants between convs)."""
    from onnx import numpy_helper

    array = numpy_helper.to_array(weights[node.input[index]])
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, 1)
    name = f"{node.name}_input{index}_widened{axis}"
    tensor = numpy_helper.from_array(np.pad(array, pad), name)
    graph.initializer.append(tensor)
    weights[name] = tensor
    node.input[index] = name


def _widen_users(graph, weights: dict, consumers: dict, graph_outputs: set, start: str, channels: int) -> list:
    """Carry one more (zero) channel of the conv output `start` through the elementwise ops after it
    to the convs that read it (their weights widened) and the reshapes (a slice drops it again);
    returns the (reshape, slice node) pairs to insert."""
    from onnx import helper, numpy_helper

    extra_nodes, frontier = [], [start]
    while frontier:
        tensor = frontier.pop()
        if tensor in graph_outputs:
            raise ValueError(f"cannot widen {tensor}: it is a model output")
        for user in consumers.get(tensor, []):
            if user.op_type in ELEMENTWISE:
                frontier.append(user.output[0])
            elif user.op_type == "Conv" and user.input[0] == tensor and user.input[1] in weights:
                _widen_input(graph, weights, user, 1, 1)
            elif user.op_type == "Reshape" and user.input[1] in weights:
                extra_nodes.append(_slice_after_reshape(user, weights, channels, 1, numpy_helper, helper, graph))
            elif user.op_type == "Transpose" and _perm(user) == [0, 2, 3, 1]:  # NHWC, then flattened
                for reshape in consumers.get(user.output[0], []):
                    if reshape.op_type != "Reshape" or reshape.input[1] not in weights:
                        raise ValueError(f"cannot widen {tensor}: {user.name} feeds {reshape.op_type} {reshape.name}")
                    extra_nodes.append(_slice_after_reshape(reshape, weights, channels, -1, numpy_helper, helper, graph))
            else:
                raise ValueError(f"cannot widen {tensor}: used by {user.op_type} {user.name}")
    return extra_nodes


def _perm(node) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


def _slice_after_reshape(reshape, weights, channels: int, axis: int, numpy_helper, helper, graph):
    """The reshape target keeps the channels at `axis` (1: NCHW, -1: after NHWC); it gets C + 1
    there, and a Slice after it drops the extra channel again."""
    target = numpy_helper.to_array(weights[reshape.input[1]]).copy()
    if len(target) < 2 or target[axis] != channels:
        raise ValueError(f"cannot widen the input of {reshape.name}: its target shape {target.tolist()} "
                         f"does not keep the {channels} channels at axis {axis}")
    target[axis] = channels + 1
    shape_name = f"{reshape.name}_widened_shape"
    graph.initializer.append(numpy_helper.from_array(target, shape_name))
    reshape.input[1] = shape_name
    out = reshape.output[0]
    wide = f"{out}_widened"
    reshape.output[0] = wide
    names = [f"{reshape.name}_slice_{k}" for k in ("starts", "ends", "axes")]
    for name, value in zip(names, (0, channels, axis)):
        graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
    return reshape, helper.make_node("Slice", [wide, *names], [out], name=f"{reshape.name}_drop_widening")
