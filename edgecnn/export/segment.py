"""Where a segmentation model's upsampling and argmax happen: the head of its exported graph.

A seg model's forward gives NCHW logits at the input size, most of them through a final
bilinear Resize of logits at the model's stride (LR-ASPP and DeepLab at 1/8, FCN at 1/8 or 1/32).
The exported graph ends in one of (`seg_head`):

- `full`: NHWC logits at the input size (the Resize stays in the graph);
- `stride`: NHWC logits at the model's stride (the final Resize is cut; the device upsamples:
  `runtime.segmenter`, bilinear logits or nearest class ids); a model without a final Resize
  (U-Net) has stride 1 and the same graph as `full`;
- `argmax`: NHW class ids at the input size (Resize and ArgMax in the graph).

The cut works on the ONNX graph, so it fits any model whose logits end in a Resize, without
knowing its code. `benchmarks/seg_export.py` measures latency and mIoU of each; `DEFAULT_HEAD`
is what it chose: on CamVid val (lraspp-mnv3s, 480x360, full int8 with int8 I/O) `full`,
`stride` + linear and `argmax` score within 0.05 mIoU points of each other (36.5), `stride` +
nearest 0.65 points less; frame to class map `argmax` took the least CPU of the three (30.1 ms
against 30.9 and 31.0, one thread) and leaves the device only a crop and a nearest resize.
"""

from __future__ import annotations

SEG_HEADS = ("full", "stride", "argmax")
DEFAULT_HEAD = "argmax"
OUTPUT = "segmentation"


def set_seg_head(graph, head: str, upsample: str = "linear") -> dict:
    """Rewrite `graph` (its one output NCHW logits named `segmentation`) in place to end in `head`.

    Returns the metadata that says what the output is: `seg_head`, `seg_output` (logits | classes),
    `seg_stride` (input size / output size), the layout and `seg_upsample` (how the device brings
    logits at a stride to the input size: `runtime.segmenter.UPSAMPLING`).
    """
    import onnx
    from onnx import TensorProto, helper

    if head not in SEG_HEADS:
        raise ValueError(f"seg_head must be one of {', '.join(SEG_HEADS)}, got {head!r}")
    nodes = list(graph.graph.node)
    producer = next(n for n in nodes if OUTPUT in n.output)
    logits = f"{OUTPUT}_nchw"
    producer.output[list(producer.output).index(OUTPUT)] = logits
    if head == "stride" and producer.op_type == "Resize":  # else (U-Net) the logits are at stride 1 already
        graph.graph.node.remove(producer)
        logits = producer.input[0]
    if head == "argmax":
        graph.graph.node.append(helper.make_node("ArgMax", [logits], [f"{OUTPUT}_int64"], axis=1, keepdims=0))
        graph.graph.node.append(helper.make_node("Cast", [f"{OUTPUT}_int64"], [OUTPUT], to=TensorProto.INT32))
    else:
        graph.graph.node.append(helper.make_node("Transpose", [logits], [OUTPUT], perm=[0, 2, 3, 1]))
    del graph.graph.output[:]
    del graph.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(graph)
    shape = _shape(inferred, logits)
    n, c, h, w = shape
    out_shape, dtype = ([n, h, w], TensorProto.INT32) if head == "argmax" else ([n, h, w, c], TensorProto.FLOAT)
    graph.graph.output.append(helper.make_tensor_value_info(OUTPUT, dtype, out_shape))
    input_h = graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    stride = input_h // h if isinstance(h, int) and h and input_h else 1
    return {"seg_head": head, "seg_output": "classes" if head == "argmax" else "logits", "seg_stride": stride,
            "seg_layout": "NHW" if head == "argmax" else "NHWC", "seg_upsample": upsample}


def _shape(graph, name: str) -> list:
    """The inferred shape of tensor `name` (dims without a fixed size by their symbol)."""
    for info in [*graph.graph.value_info, *graph.graph.output]:
        if info.name == name:
            return [d.dim_value or d.dim_param for d in info.type.tensor_type.shape.dim]
    raise ValueError(f"cannot infer the shape of {name}")
