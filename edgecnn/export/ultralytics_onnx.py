"""An Ultralytics detection ONNX export cut into our output contract, ready for `export_tflite`.

Ultralytics' head ends in one tensor `[1, 4 + nc, N]`: DFL distances decoded to xywh pixels and
the sigmoid class scores, concatenated (then NMS, with `nms=True`). One int8 scale for pixel
boxes and [0, 1] scores ruins one of them, so the graph is cut (onnx-graphsurgeon) before that
concatenation: at the DFL output (ltrb distances in stride units, as ours) and at the sigmoid
scores, each transposed to `(1, A, 4)` / `(1, A, C)`. Everything after the cut (dist2bbox, the
concat, NMS) is left to `runtime.postprocess`. A dynamic export is fixed to its metadata imgsz.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from edgecnn.export.onnx import artifact_meta, set_onnx_metadata
from edgecnn.fileio import atomic_path
from edgecnn.runtime.backends import OnnxBackend
from edgecnn.runtime.ultralytics_layout import is_ultralytics, level_strides

LOG = logging.getLogger(__name__)


def is_ultralytics_onnx(path: str | os.PathLike) -> bool:
    """Whether Ultralytics exported this ONNX file (False for files ONNX cannot read: the backend names those)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError):
        return False
    return is_ultralytics({p.key: p.value for p in model.metadata_props})


def import_ultralytics_onnx(path: str | os.PathLike, dest: str | os.PathLike, threads: int | None = None):
    """(reference backend, cut ONNX path): the export's own raw output `[1, 4+nc, N]` run through
    `runtime.ultralytics_layout` (NMS removed: the cut graph has none to compare with), and the cut
    graph with our metadata at `dest`."""
    import onnx
    import onnx_graphsurgeon as gs

    path, dest = Path(path), Path(dest)
    if dest.resolve() == path.resolve():
        raise ValueError(f"{path}: the cut model would overwrite its source; choose another out=")
    original = OnnxBackend(path, threads=threads)  # refuses other tasks and layouts, naming what it found
    size = original.input_size
    model = static_graph(onnx.load(str(path)), size)
    graph = gs.import_onnx(model)
    raw, _, _ = head_tensors(graph, len(original.meta["names"]), path)
    meta = dict(original.meta, strides=level_strides(original.meta["strides"][-1], size, raw.shape[2]))
    meta.pop("ultralytics_layout", None)

    with tempfile.TemporaryDirectory(prefix="edgecnn-ultralytics-") as work:
        graph.outputs = [raw]
        reference_path = Path(work) / path.name
        onnx.save(exported(graph, model, props=True), str(reference_path))
        reference = OnnxBackend(reference_path, threads=threads)  # ORT holds the graph; the file may go

    graph = gs.import_onnx(model)  # afresh: cleaning up the reference's graph removed the DFL
    _, dfl, scores = head_tensors(graph, len(meta["names"]), path)
    graph.outputs = [transposed(graph, dfl, "boxes"), transposed(graph, scores, "scores")]
    cut = exported(graph, model)
    onnx.checker.check_model(cut, full_check=True)
    opset = next(o.version for o in cut.opset_import if o.domain in ("", "ai.onnx"))
    set_onnx_metadata(cut, artifact_meta(meta, size, format="onnx", opset=opset, source="ultralytics",
                                         ultralytics_version=meta.get("ultralytics_version"), source_file=path.name))
    with atomic_path(dest) as tmp:
        onnx.save(cut, str(tmp))
    LOG.info("cut %s at the DFL output and the class sigmoid: %s", path.name, dest)
    reference.path = path
    return reference, dest


def static_graph(model, size: tuple[int, int]):
    """The model with its image input fixed to (1, 3, h, w), shapes folded and inferred (onnxslim)."""
    import onnxslim

    dims = model.graph.input[0].type.tensor_type.shape.dim
    static = [1, 3, *size]
    if [d.dim_value for d in dims] != static:
        for dim, value in zip(dims, static):
            dim.Clear()
            dim.dim_value = value
    return onnxslim.slim(model)


def head_tensors(graph, nc: int, path: Path):
    """(raw output `[1, 4+nc, A]`, DFL output `[1, 4, A]`, sigmoid scores `[1, nc, A]`) of the head."""
    for node in graph.nodes:
        out = node.outputs[0]
        if node.op == "Concat" and out.shape is not None and len(out.shape) == 3 and out.shape[1] == 4 + nc \
                and len(node.inputs) == 2 and _producer(node.inputs[1]) == "Sigmoid":
            dfl = _dfl_output(node.inputs[0])
            if dfl is not None:
                return out, dfl, node.inputs[1]
    raise ValueError(
        f"{path}: no YOLOv8/YOLO11 detection head found (a DFL whose distances and the sigmoid class scores are "
        f"concatenated into [1, {4 + nc}, N]); edgecnn cuts only that head for TFLite"
    )


def _producer(tensor) -> str | None:
    return tensor.inputs[0].op if tensor.inputs else None


def _dfl_output(start):
    """The DFL's distances upstream of `start`: Softmax → Conv(arange(reg_max) weights) → Reshape."""
    seen, queue = set(), [start]
    while queue:
        tensor = queue.pop(0)
        if id(tensor) in seen or not tensor.inputs:
            continue
        seen.add(id(tensor))
        node = tensor.inputs[0]
        if node.op == "Reshape" and _is_dfl_conv(node.inputs[0]):
            return tensor
        queue.extend(t for t in node.inputs if t.inputs)
    return None


def _is_dfl_conv(tensor) -> bool:
    import onnx_graphsurgeon as gs

    if _producer(tensor) != "Conv":
        return False
    conv = tensor.inputs[0]
    weight = conv.inputs[1]
    if _producer(conv.inputs[0]) != "Softmax" or not isinstance(weight, gs.Constant):
        return False
    values = np.asarray(weight.values).reshape(-1)
    return weight.shape[0] == 1 and np.array_equal(values, np.arange(len(values)))


def transposed(graph, tensor, name: str):
    """`tensor (1, K, A)` → a graph output `name (1, A, K)`."""
    import onnx_graphsurgeon as gs

    out = gs.Variable(name, dtype=np.float32, shape=[tensor.shape[0], tensor.shape[2], tensor.shape[1]])
    graph.nodes.append(gs.Node("Transpose", name=f"{name}_transpose", attrs={"perm": [0, 2, 1]},
                               inputs=[tensor], outputs=[out]))
    return out


def exported(graph, source, props: bool = False):
    """`graph` as a model with `source`'s IR version (graphsurgeon writes the newest, which ONNX
    Runtime may not read yet) and, with `props`, its metadata_props."""
    import onnx_graphsurgeon as gs

    model = gs.export_onnx(graph.cleanup().toposort())
    model.ir_version = source.ir_version
    if props:
        model.metadata_props.extend(source.metadata_props)
    return model
