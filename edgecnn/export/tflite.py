"""ONNX → TFLite through onnx2tf: fp32, fp16 or full-integer int8, metadata inside the file.

onnx2tf turns the NCHW graph into NHWC, so the .tflite takes NHWC images, and keeps the
detector's `(B, A, 4)` / `(B, A, C)` outputs. It cannot tell NCHW from NHWC for a tensor with
C == H == W, so such convs are widened first (`export.layout`), and onnx2tf's fp32 model is
checked against ONNX Runtime whatever the precision (`check_layout`).
onnx2tf reads `calibration_image_sample_data_20x128x128x3_float32.npy` from its working directory
and downloads it when absent, so every conversion runs in a fresh temporary directory where that
file is first written from our own calibration images, which are also its test data
(`custom_input_op_name_np_data_path`). int8 is calibrated on the same images with the model's
normalization (`quantize_int8`). `float_ops` leaves named TFLite ops in float inside an int8 model
(TFLite's selective quantization): by default the BATCH_MATMULs of attention (YOLO11's C2PSA),
whose two int8 activation operands cost a YOLO11n 8 mAP points in full int8. int8 exports write
HardSwish and HardSigmoid as Add, Clip and Mul (`export.hard_activations`): XNNPACK has no int8
HARD_SWISH, and each one cut MobileNetV3's int8 graph out of the delegate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edgecnn.export.hard_activations import decompose_hard_activations
from edgecnn.export.layout import cube_shapes, pad_cube_convs
from edgecnn.export.qdq import strip_qdq
from edgecnn.config import split_list
from edgecnn.fileio import atomic_write_bytes, stdout_to_stderr
from edgecnn.runtime.backends import META_KEY, OUTPUTS, json_or_text, tflite_interpreter_class

LOG = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "int8")
IO_TYPES = ("float", "int8", "uint8")
HARD_ACTIVATIONS = ("decompose", "keep")
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def export_tflite(
    onnx_path: str | os.PathLike,
    path: str | os.PathLike,
    calib_images: np.ndarray,
    precision: str = "fp32",
    io: str = "float",
    quant_type: str = "per-channel",
    float_ops: str | Sequence[str] | None = "auto",
    float_layers: int = 0,
    hard_activations: str = "decompose",
) -> Path:
    """Convert a static-shape ONNX file written by `export_onnx` into a .tflite at `path`.

    `calib_images`: uint8 RGB `(N, H, W, 3)` letterboxed to the model's input size; int8
    calibrates on them, every precision writes onnx2tf's sample file from them. `io` sets the
    int8 model's input/output type (float keeps quantize/dequantize inside the model).
    `float_ops`: TFLite op names kept in float in an int8 model, "none", or "auto" (`auto_float_ops`).
    `float_layers`: that many more tensors kept in float, those int8 hurts most (`sensitive_tensors`).
    `hard_activations`: int8 HardSwish/HardSigmoid as Add, Clip, Mul ("decompose": XNNPACK runs the
    whole graph) or as TFLite's own ops ("keep": run outside XNNPACK, slower, closer to float).
    """
    import onnx

    if precision not in PRECISIONS or io not in IO_TYPES:
        raise ValueError(f"precision must be one of {PRECISIONS} and io one of {IO_TYPES}; got {precision}, {io}")
    if hard_activations not in HARD_ACTIVATIONS:
        raise ValueError(f"hard_activations must be one of {HARD_ACTIVATIONS}; got {hard_activations}")
    if precision != "int8" and io != "float":
        raise ValueError(f"io={io} needs precision=int8 (a {precision} model takes float input)")
    onnx_path = Path(onnx_path).resolve()
    graph = onnx.load(str(onnx_path))
    meta = {p.key: json_or_text(p.value) for p in graph.metadata_props}
    if "task" not in meta:
        raise ValueError(f"{onnx_path}: no edgecnn metadata; write it with `edgecnn export format=onnx`")
    onnx_outputs = [o.name for o in graph.graph.output]
    if any(not d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim):
        raise ValueError(f"{onnx_path}: has dynamic axes; TFLite needs a static ONNX export (dynamic=false)")
    calib = calibration_array(calib_images, tuple(meta["input_size"]), onnx_path)
    has_qdq = any(n.op_type == "QuantizeLinear" for n in graph.graph.node)
    float_graph, float_ops = graph_to_convert(graph, has_qdq, precision, io, float_ops, float_layers,
                                              hard_activations == "decompose")
    model_bytes = _convert(onnx_path, graph, float_graph, meta, calib_images, calib, precision, io, quant_type,
                           float_ops, float_layers)
    outputs = output_tensor_names(model_bytes, onnx_outputs, graph, onnx_path)
    meta.update(
        format="tflite", precision=precision, io=io, outputs=outputs, calibration_images=len(calib),
        quant_type=quant_type if precision == "int8" else None, float_ops=float_ops,
        float_layers=float_layers if precision == "int8" else None,
        hard_activations=hard_activations if precision == "int8" else None,
        int8_ranges=("calibrated within the QAT ranges (Q/DQ pairs converted to Clip)" if has_qdq else "calibrated")
        if precision == "int8" else None,
    )
    meta.pop("dynamic", None)
    meta.pop("opset", None)
    path = atomic_write_bytes(path, with_tflite_metadata(model_bytes, {META_KEY: json.dumps(meta).encode()}))
    LOG.info("TFLite %s model written to %s", precision, path)
    return path


def graph_to_convert(graph, has_qdq: bool, precision: str, io: str, float_ops, float_layers: int,
                     decompose: bool) -> tuple:
    """(the float ONNX graph onnx2tf converts, the TFLite ops kept in float)."""
    # onnx2tf mis-converts Q/DQ graphs: a QAT export converts as its float graph
    float_graph = strip_qdq(graph) if has_qdq else graph
    if precision != "int8":
        return float_graph, []
    float_ops = resolve_float_ops(float_ops, float_graph)
    if (float_ops or float_layers) and io == "uint8":
        raise ValueError(f"io=uint8 cannot be combined with float_ops={','.join(float_ops)} or float_layers={float_layers} "
                         "(a selectively quantized TFLite has int8 or float I/O): use io=int8, or float_ops=none")
    if float_ops:
        LOG.info("int8 with %s kept in float (float_ops=none puts every op in int8)", ", ".join(float_ops))
    if not decompose:
        return float_graph, float_ops
    float_graph, replaced = decompose_hard_activations(float_graph)
    if any(replaced.values()):
        LOG.info("int8: %s written as Add, Clip and Mul (XNNPACK runs those in int8, not HARD_SWISH or RELU_0_TO_1)",
                 ", ".join(f"{n} {op}" for op, n in replaced.items() if n))
    return float_graph, float_ops


def _convert(onnx_path: Path, graph, float_graph, meta: dict, calib_images: np.ndarray, calib: np.ndarray,
             precision: str, io: str, quant_type: str, float_ops: list[str], float_layers: int) -> bytes:
    """onnx2tf in a scratch working directory: the fp32 model checked against ONNX Runtime, then
    the bytes of the precision asked for."""
    import onnx
    import onnx2tf

    image_input = graph.graph.input[0]
    with _working_dir() as work:
        source = work / onnx_path.name  # a copy: onnx2tf rewrites its input file in place
        onnx.save(float_graph, str(source))
        convert = unambiguous_copy(source, work / "unambiguous")
        np.save(ONNX2TF_SAMPLE, sample_for_onnx2tf(calib))
        np.save("calib.npy", calib)
        mean = np.asarray(meta["mean"], np.float32).reshape(1, 1, 1, 3)
        std = np.asarray(meta["std"], np.float32).reshape(1, 1, 1, 3)
        tic = time.perf_counter()
        with stdout_to_stderr(), _onnx2tf_exit_as_error(onnx_path):
            onnx2tf.convert(
                input_onnx_file_path=str(convert),
                output_folder_path="saved_model",
                output_signaturedefs=True,
                custom_input_op_name_np_data_path=[[image_input.name, str(work / "calib.npy"), mean, std]],
                non_verbose=True,
                verbosity="error",
            )
            produced = {p: work / "saved_model" / f"{onnx_path.stem}_float{p[2:]}.tflite" for p in ("fp32", "fp16")}
            if not all(f.is_file() for f in produced.values()):
                raise RuntimeError(f"onnx2tf did not write {', '.join(f.name for f in produced.values())} for {onnx_path}")
            check_layout(source, produced["fp32"].read_bytes(), meta, calib_images, graph)
            if precision == "int8":
                model_bytes = quantize_int8(work / "saved_model", (calib - mean) / std, io, quant_type, float_ops,
                                            float_layers, image_input.type.tensor_type.shape.dim[0].dim_value)
            else:
                model_bytes = produced[precision].read_bytes()
        LOG.info("onnx2tf converted %s (%s, io=%s) in %.0f s", onnx_path.name, precision, io, time.perf_counter() - tic)
    return model_bytes


def check_layout(source: Path, fp32_bytes: bytes, meta: dict, images: np.ndarray, graph) -> None:
    """onnx2tf's fp32 model against ONNX Runtime on our images, whatever precision was asked for.

    Catches layouts onnx2tf got wrong (it cannot tell NCHW from NHWC for a tensor with
    H == W == C) before an int8 model, whose own errors are larger, hides them.
    """
    from edgecnn.export.parity import ParityError, check_parity
    from edgecnn.runtime.backends import OnnxBackend, TFLiteBackend

    outputs = output_tensor_names(fp32_bytes, [o.name for o in graph.graph.output], graph, source)
    check_path = source.with_name("layout_check.tflite")
    check_path.write_bytes(with_tflite_metadata(fp32_bytes, {META_KEY: json.dumps(dict(meta, outputs=outputs)).encode()}))
    try:
        check_parity(OnnxBackend(source), TFLiteBackend(check_path), images[:4], "fp32")
    except ParityError as err:
        cubes = [f"{name} {shape}" for name, shape in cube_shapes(graph).items()]
        hint = f"; tensors with H == W == C: {', '.join(cubes[:3])}: choose another imgsz" if cubes else ""
        raise ParityError(f"onnx2tf converted {source.name} wrongly: {err}{hint}") from None


def unambiguous_copy(source: Path, folder: Path) -> Path:
    """`source`, or a widened copy in `folder` when it has conv outputs with C == H == W."""
    import onnx

    model = onnx.load(str(source))
    if not cube_shapes(model):
        return source
    try:
        widened, count = pad_cube_convs(model)
    except ValueError as err:  # the layout check will tell whether onnx2tf got it right anyway
        LOG.warning("%s has tensors with C == H == W that onnx2tf may lay out wrongly (%s)", source.name, err)
        return source
    LOG.info("widened %d conv(s) of %s by a zero channel so onnx2tf sees no C == H == W tensor", count, source.name)
    folder.mkdir(exist_ok=True)
    onnx.save(widened, str(folder / source.name))
    return folder / source.name


def quantize_int8(saved_model: Path, normalized: np.ndarray, io: str, quant_type: str,
                  float_ops: Sequence[str] = (), float_layers: int = 0, batch: int = 1) -> bytes:
    """Full-integer int8 from onnx2tf's SavedModel, calibrated on our normalized NHWC images.

    Done here rather than with onnx2tf's `-oiqt`, which calibrates five variants (dynamic-range,
    int16-activation ...) where we keep one. Builtin int8 ops only (no SELECT_TF_OPS), so the
    model runs in XNNPACK or fails to convert, never silently falls back to TF kernels. With
    `float_ops`, those ops keep float kernels (TFLite's QuantizationDebugger is its public route
    to a selectively quantized model); so do the `float_layers` tensors int8 hurts most; the rest
    stays int8. A model of a fixed `batch` is calibrated on that many images per call.
    """
    import tensorflow as tf

    def representative():  # calls of the model's `batch` images, wrapping round to fill the last
        for start in range(0, max(len(normalized), batch), batch):
            yield [np.take(normalized, range(start, start + batch), axis=0, mode="wrap").astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter._experimental_disable_per_channel = quant_type == "per-tensor"
    nodes = sensitive_tensors(converter, representative, float_layers) if float_layers else []
    if float_ops or nodes:  # io is float or int8 (export_tflite refuses uint8 with float ops)
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops), denylisted_nodes=nodes,
                                                                fully_quantize=io == "int8")
        with warnings.catch_warnings():  # it builds tf.lite.Interpreters, which warn that LiteRT replaces them
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                                debug_options=options)
        return debugger.get_nondebug_quantized_model()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = {"float": tf.float32, "int8": tf.int8, "uint8": tf.uint8}[io]
    return converter.convert()


def sensitive_tensors(converter, representative, count: int) -> list[str]:
    """The `count` tensors int8 hurts most on the calibration images: TFLite's QuantizationDebugger
    runs float and int8 side by side, and the error of each tensor is measured in its own
    quantization steps (RMSE / scale, as its tutorial ranks layers for selective quantization)."""
    import csv
    import io as text_io

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        try:
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
            debugger.run()
        except ValueError as err:  # a graph without quantized layers (e.g. outputs that are constants)
            LOG.warning("the quantization debugger has no int8 layers to rank (%s); float_layers keeps none", err)
            return []
    dump = text_io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = [r for r in csv.DictReader(text_io.StringIO(dump.getvalue())) if float(r["scale"] or 0) > 0]
    ranked = sorted(rows, key=lambda r: -np.sqrt(float(r["mean_squared_error"])) / float(r["scale"]))
    count = min(count, len(ranked) - 1)  # selective quantization needs an int8 layer left
    LOG.info("int8 error in quantization steps, worst tensors: %s", ", ".join(
        f"{r['tensor_name']} {np.sqrt(float(r['mean_squared_error'])) / float(r['scale']):.2f}" for r in ranked[:count]))
    return [r["tensor_name"] for r in ranked[:count]]


def resolve_float_ops(float_ops: str | Sequence[str] | None, graph) -> list[str]:
    """The TFLite op names `float_ops` asks for: a list or comma-separated names, "none" (None), or "auto"."""
    if float_ops is None or float_ops == "none":
        return []
    if isinstance(float_ops, str):
        if float_ops == "auto":
            return auto_float_ops(graph)
        float_ops = split_list(float_ops)  # "A,B" or "[A, B]"
    bad = [op for op in float_ops if not re.fullmatch(r"[A-Z][A-Z0-9_]*", op)]
    if bad:
        raise ValueError(f"float_ops: {', '.join(map(repr, bad))} are not TFLite builtin op names "
                         "(upper case, e.g. BATCH_MATMUL), 'auto' or 'none'")
    return list(float_ops)


def auto_float_ops(graph) -> list[str]:
    """BATCH_MATMUL when the ONNX graph multiplies two activations (attention), else nothing.

    Both operands of such a product get one per-tensor int8 scale each, and their errors multiply:
    YOLO11n's C2PSA attention lost 8 of 17.5 mAP50-95 points in full int8 (measured, the other ops
    are within rounding noise by TFLite's layer statistics); its two BATCH_MATMULs in float gave
    the points back to within 0.3. A MatMul with a constant operand becomes an int8 FULLY_CONNECTED.
    """
    constants = {t.name for t in graph.graph.initializer}
    products = 0
    for node in graph.graph.node:  # topologically sorted: a node of constants only makes constants
        if all(i in constants for i in node.input if i):
            constants.update(node.output)
        products += node.op_type == "MatMul" and not constants & set(node.input)
    return ["BATCH_MATMUL"] if products else []


@contextlib.contextmanager
def _working_dir() -> Iterator[Path]:
    """A fresh temporary directory as the working directory (onnx2tf reads and writes its cwd)."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="edgecnn-onnx2tf-") as work:
        os.chdir(work)
        try:
            yield Path(work)
        finally:
            os.chdir(previous)


@contextlib.contextmanager
def _onnx2tf_exit_as_error(onnx_path: Path) -> Iterator[None]:
    """onnx2tf calls sys.exit(1) on bad input; turn that into an error naming the file."""
    try:
        yield
    except SystemExit as err:
        raise RuntimeError(f"onnx2tf failed to convert {onnx_path} (exit {err.code}; its messages are above)") from None


def calibration_array(images: np.ndarray, size: tuple[int, int], where: Path) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) at the model's input size → float32 in [0, 1], as onnx2tf wants."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (*size, 3) or images.dtype != np.uint8 or not len(images):
        raise ValueError(
            f"calibration images for {where} must be uint8 RGB (N, {size[0]}, {size[1]}, 3) with N >= 1; "
            f"got {images.dtype} {images.shape}"
        )
    return images.astype(np.float32) / 255.0


def sample_for_onnx2tf(calib: np.ndarray) -> np.ndarray:
    """onnx2tf's sample file: 20 images of 128x128x3 in [0, 1] (repeated when we have fewer)."""
    import cv2

    picks = calib[np.arange(20) % len(calib)]
    return np.stack([cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA) for img in picks]).astype(np.float32)


def output_tensor_names(model_bytes: bytes, onnx_outputs: list[str], graph, where: Path) -> dict[str, str]:
    """Map each ONNX output to its TFLite tensor name; checks that shapes survived the conversion.

    onnx2tf names outputs `PartitionedCall:i` / `Identity_i` in ONNX output order but may list
    them in another order (and int8 signatures lose the names), so the index in the name decides.
    """
    interpreter = tflite_interpreter_class()(model_content=model_bytes)
    details = interpreter.get_output_details()
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.graph.output}
    mapping = {}
    for detail in details:
        match = re.search(r"(?:PartitionedCall:|Identity_?)(\d*)$", detail["name"])
        if not match:
            raise RuntimeError(f"{where}: cannot tell which ONNX output TFLite tensor {detail['name']!r} is")
        onnx_name = onnx_outputs[int(match.group(1) or 0)]
        if list(detail["shape"]) != shapes[onnx_name]:
            raise RuntimeError(
                f"{where}: onnx2tf changed output '{onnx_name}' from {shapes[onnx_name]} to {list(detail['shape'])}; "
                "flatten detector heads after a permute to NHWC so the layout survives"
            )
        mapping[onnx_name] = detail["name"]
    task_outputs = OUTPUTS[json_or_text(next(p.value for p in graph.metadata_props if p.key == "task"))]
    if sorted(mapping) != sorted(task_outputs):
        raise RuntimeError(f"{where}: TFLite outputs {sorted(mapping)} do not match {list(task_outputs)}")
    return mapping


def with_tflite_metadata(model_bytes: bytes, entries: dict[str, bytes]) -> bytes:
    """The model with `entries` added to its flatbuffer `metadata` (name → buffer), replacing same names."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() not in entries]
    for name, content in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(content, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name.encode(), len(model.buffers) - 1
        model.metadata.append(entry)
    return flatbuffer_utils.convert_object_to_bytearray(model)

