"""Run an exported model: ONNX Runtime or a TFLite interpreter behind one interface.

`load_backend(path)` reads the artifact's own metadata (class names, input size, normalization,
strides, task), or an Ultralytics ONNX / .tflite's own (`ultralytics_layout`), so the device needs
nothing else. `Backend.predict` takes letterboxed uint8 RGB images (N, H, W, 3) and returns
float32 outputs by name; it applies the normalization and the int8/uint8 (de)quantization the
artifact's tensors ask for, both as one table lookup per pixel. numpy and OpenCV only: no torch,
no TensorFlow.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.runtime import ultralytics_layout
from edgecnn.runtime.preprocess import PAD_VALUE

OUTPUTS = {"detect": ("boxes", "scores"), "classify": ("logits",), "embed": ("embedding",),
           "segment": ("segmentation",)}  # segment: NHWC logits or NHW class ids (runtime.segmenter)
META_KEY = "edgecnn"  # name of the TFLite metadata entry; prefix-free keys in ONNX metadata_props
REQUIRED_META = ("task", "names", "input_size", "mean", "std")
TFLITE_IDENTIFIER = b"TFL3"
ZIP_MAGIC = b"PK\x03\x04"


class Backend:
    """An artifact ready to run: `meta`, `input_size (h, w)`, `predict(uint8 NHWC RGB) -> dict`."""

    kind = "?"

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any], batch: int | None):
        self.path = Path(path)
        self.meta = validate_meta(meta, self.path)
        self.input_size: tuple[int, int] = tuple(int(v) for v in meta["input_size"])
        self.output_names: tuple[str, ...] = OUTPUTS[meta["task"]]
        self.batch = batch  # images per call the model takes; None: any
        mean = np.asarray(meta["mean"], np.float32) * 255.0
        inv_std = 1.0 / (np.asarray(meta["std"], np.float32) * 255.0)
        self._levels = (np.arange(256, dtype=np.float32)[:, None] - mean) * inv_std  # (256, 3): pixel → input

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Letterboxed uint8 RGB `(N, H, W, 3)` (or one `(H, W, 3)`) → float32 outputs by name."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        h, w = self.input_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h, w, 3):
            raise ValueError(
                f"{self.path.name} takes uint8 RGB images of shape (N, {h}, {w}, 3); "
                f"got {images.dtype} {images.shape} (letterbox frames with runtime.preprocess.letterbox)"
            )
        count, step = len(images), self.batch or len(images)
        if count % step:  # a model of a fixed batch: the last call is filled up with copies of the last image
            images = np.concatenate([images, np.repeat(images[-1:], step - count % step, axis=0)])
        parts = [self._run(images[i : i + step]) for i in range(0, len(images), step)]
        return {name: np.concatenate([p[name] for p in parts])[:count].astype(np.float32, copy=False)
                for name in self.output_names}

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 RGB → float32 `(x / 255 - mean) / std`, NHWC."""
        return lookup(images, self._levels)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, task={self.meta['task']}, input_size={self.input_size})"


def lookup(images: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`table[pixel, channel]` for every pixel of uint8 NHWC `images`, in the table's dtype: OpenCV's
    LUT, about 10x numpy's cast-subtract-multiply on a 320x320 frame (a site pays it per frame)."""
    n, h, w, c = images.shape
    flat = np.ascontiguousarray(images).reshape(n * h, w, c)
    return cv2.LUT(flat, np.ascontiguousarray(table).reshape(256, 1, c)).reshape(n, h, w, c)


def validate_meta(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(
            f"{path}: no edgecnn metadata ({', '.join(missing)} missing); export the model with `edgecnn export`"
        )
    if meta["task"] not in OUTPUTS:
        raise ValueError(f"{path}: unknown task {meta['task']!r} in metadata; expected one of {', '.join(OUTPUTS)}")
    if meta["task"] == "detect" and not meta.get("strides"):
        raise ValueError(f"{path}: a detector's metadata needs 'strides'")
    return meta


class OnnxBackend(Backend):
    """ONNX Runtime on the CPU, or CUDA / TensorRT when the install has them (Jetson)."""

    kind = "onnx"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        wanted = providers or [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
        wanted = [p for p in wanted if p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=wanted)
        except Exception as err:  # ORT raises its own exception types for unreadable files
            raise ValueError(f"{path}: not a readable ONNX model ({err})") from err
        props = self.session.get_modelmeta().custom_metadata_map
        self.layout = ultralytics_layout.from_session(self.session, Path(path))  # None: not an Ultralytics export
        meta = self.layout.meta if self.layout else {k: json_or_text(v) for k, v in props.items()}
        image_input = self.session.get_inputs()[0]
        self.input_name = image_input.name
        batch = image_input.shape[0]
        super().__init__(path, meta, batch if isinstance(batch, int) else None)
        names = {o.name for o in self.session.get_outputs()}
        if self.layout is None and not set(self.output_names) <= names:
            raise ValueError(f"{path}: outputs {sorted(names)} lack {list(self.output_names)} for task {meta['task']}")

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(self.normalize(images).transpose(0, 3, 1, 2))
        if self.layout:
            return self.layout.to_contract(self.session.run(None, {self.input_name: x})[0])
        outputs = self.session.run(list(self.output_names), {self.input_name: x})
        return dict(zip(self.output_names, outputs))


def json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


class TFLiteBackend(Backend):
    """A TFLite interpreter (XNNPACK on the CPU) with float, int8 or uint8 inputs and outputs."""

    kind = "tflite"

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        data = Path(path).read_bytes()
        entries = read_tflite_metadata(data, path)
        ultralytics = None if META_KEY in entries else ultralytics_layout.tflite_metadata(data, Path(path))
        if META_KEY not in entries and ultralytics is None:
            raise ValueError(f"{path}: no '{META_KEY}' metadata entry nor Ultralytics metadata; export the model with "
                             "`edgecnn export format=tflite`")
        interpreter_cls = tflite_interpreter_class()
        try:
            self.interpreter = interpreter_cls(model_content=data, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{path}: the TFLite interpreter cannot load it ({err})") from err
        self.input = self.interpreter.get_input_details()[0]
        self.layout = None
        if ultralytics is not None:
            output_details = self.interpreter.get_output_details()
            self.layout = ultralytics_layout.from_tflite(ultralytics, self.input, self.interpreter.get_tensor_details(),
                                                         output_details, Path(path))
            meta = self.layout.meta
        else:
            meta = json.loads(entries[META_KEY].decode("utf-8"))
        super().__init__(path, meta, int(self.input["shape"][0]))
        self._input_lut = self._make_input_lut()
        if self.layout:
            self.outputs = {"output": output_details[0]}
            grey = np.full((self.batch, *self.input_size, 3), PAD_VALUE, np.uint8)
            self.layout.box_units(self._invoke(grey)["output"])
        else:
            self.outputs = self._output_details(meta.get("outputs", {}))

    def _output_details(self, tensor_names: dict[str, str]) -> dict[str, dict]:
        details = {d["name"]: d for d in self.interpreter.get_output_details()}
        try:
            return {name: details[tensor_names.get(name, name)] for name in self.output_names}
        except KeyError as err:
            raise ValueError(f"{self.path}: output tensor {err} named in the metadata is not in the model ({sorted(details)})") from None

    def _make_input_lut(self) -> np.ndarray:
        """(256, 3) table pixel → the input tensor's value per channel: normalized, and quantized
        for int8/uint8 inputs."""
        dtype = self.input["dtype"]
        if not np.issubdtype(dtype, np.integer):
            return self._levels
        scale, zero = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(self._levels / scale + zero), info.min, info.max).astype(dtype)

    def _set_input(self, images: np.ndarray) -> None:
        x = lookup(images, self._input_lut)
        if self.layout and self.layout.nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        self.interpreter.set_tensor(self.input["index"], x)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = self._invoke(images)
        return self.layout.to_contract(out["output"]) if self.layout else out

    def _invoke(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs by our name, dequantized."""
        self._set_input(images)
        self.interpreter.invoke()
        out = {}
        for name, detail in self.outputs.items():
            value = self.interpreter.get_tensor(detail["index"])
            scale, zero = detail["quantization"]
            if np.issubdtype(detail["dtype"], np.integer) and scale:  # class ids (argmax) have no scale
                value = (value.astype(np.float32) - zero) * scale
            out[name] = value
        return out


def tflite_interpreter_class():
    """LiteRT (ai-edge-litert), else tflite-runtime: the device's interpreters (the host's `device`
    extra installs LiteRT too, so TensorFlow's own is never needed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ImportError("no TFLite interpreter found: pip install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter


def read_tflite_metadata(data: bytes, path: str | os.PathLike = "<bytes>") -> dict[str, bytes]:
    """The `Model.metadata` entries of a .tflite flatbuffer: name → buffer bytes.

    Read by hand (stdlib) because tflite-runtime ships no flatbuffers schema; the layout is
    tensorflow/lite/schema/schema.fbs (Model: buffers = field 4, metadata = field 6).
    """
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{path}: not a TFLite model (no 'TFL3' identifier){_kind_hint(data)}")

    def u32(at: int) -> int:
        return struct.unpack_from("<I", data, at)[0]

    def field(table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", data, table)[0]
        slot = 4 + 2 * index
        if slot >= struct.unpack_from("<H", data, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", data, vtable + slot)[0]
        return table + offset if offset else None

    def vector(at: int | None) -> list[int]:
        if at is None:
            return []
        start = at + u32(at)
        return [start + 4 + 4 * i for i in range(u32(start))]

    def deref(at: int) -> int:
        return at + u32(at)

    try:
        root = u32(0)
        buffers = vector(field(root, 4))
        entries = {}
        for slot in vector(field(root, 6)):
            entry = deref(slot)
            name_at = deref(field(entry, 0))
            name = data[name_at + 4 : name_at + 4 + u32(name_at)].decode("utf-8")
            buffer = deref(buffers[u32(field(entry, 1))])
            content_at = field(buffer, 0)
            if content_at is not None:
                start = deref(content_at)
                entries[name] = data[start + 4 : start + 4 + u32(start)]
            else:  # models > 2 GB keep buffers after the flatbuffer: offset (field 1), size (field 2)
                offset_at, size_at = field(buffer, 1), field(buffer, 2)
                offset = struct.unpack_from("<Q", data, offset_at)[0] if offset_at else 0
                size = struct.unpack_from("<Q", data, size_at)[0] if size_at else 0
                entries[name] = data[offset : offset + size]
        return entries
    except (struct.error, IndexError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: corrupt TFLite flatbuffer ({err})") from err


def _kind_hint(data: bytes) -> str:
    if data[:4] == ZIP_MAGIC:
        return "; it looks like a PyTorch checkpoint: the device runs .onnx or .tflite, make one with `edgecnn export`"
    if data[:1] == b"\x08":
        return "; it looks like an ONNX model: rename it to .onnx"
    return ""


def load_backend(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None) -> Backend:
    """The backend for an exported artifact, chosen by its suffix (.onnx, .tflite)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        with open(path, "rb") as f:
            head = f.read(8)
        if head[4:8] == TFLITE_IDENTIFIER or head[:4] == ZIP_MAGIC:
            raise ValueError(f"{path}: not an ONNX model{_kind_hint(head)}")
        return OnnxBackend(path, threads=threads, providers=providers)
    if suffix == ".tflite":
        return TFLiteBackend(path, threads=threads)
    if suffix in (".pt", ".pth"):
        raise ValueError(
            f"{path}: a PyTorch checkpoint cannot run on the device; export it with "
            f"`edgecnn export model={path} format=tflite` (or format=onnx)"
        )
    raise ValueError(f"{path}: unknown model file type '{suffix}'; expected .onnx or .tflite")
