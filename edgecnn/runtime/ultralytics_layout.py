"""Ultralytics detection exports (ONNX, TFLite) run as they are: their metadata and outputs in our contract.

`YOLO(...).export(format="onnx")` writes one output, either `[B, 4 + nc, N]` (boxes as centre
x, y, width, height in input pixels, then sigmoid class scores, one column per anchor) or, with
NMS inside (`nms=True`, or an end-to-end head), `[B, max_det, 6]` rows `x1, y1, x2, y2, score,
class`. `UltralyticsLayout` turns either into `boxes (B, A, 4)` ltrb distances in stride units and
`scores (B, A, C)`, so the detector, NMS and tracker run them like our own exports. Their ONNX
metadata_props are Python literals (`str()` of dicts and lists): read with `ast.literal_eval`,
which evaluates nothing but literals. Their .tflite files carry the same dict as a zip appended
to the flatbuffer (`metadata.json`; a Python literal in files of tflite-support days), read with
`zipfile` (only a dict with `author: Ultralytics` counts). Their one output `[B, 4 + nc, N]` is
dequantized when int8; NMS-inside outputs are refused for TFLite. Input `(1, H, W, 3)` (onnx2tf
routes) or `(1, 3, H, W)` (litert-torch), float or int8. Box units are not recorded: 8.4.190's
`saved_model` route writes pixels, its `edgetpu` route, litert-torch and older `format=tflite`
exports divide by the input size; `box_units` runs the model once on a grey image at load and fits
the slope of box centres on anchor centres (about 1 in pixels, 1/size normalized). An integer
tensor of the output's shape with a step above `MAX_SCORE_STEP` (pixel boxes and scores in one
int8 scale: 8.4.190's `_integer_quant` and `_full_integer_quant`) is refused with the fix.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime.boxes import cxcywh_to_xyxy
from edgecnn.runtime.postprocess import make_anchors

NMS_COLUMNS = 6  # x1, y1, x2, y2, score, class
MAX_METADATA_BYTES = 1 << 20  # the appended zip's metadata entry: a few hundred bytes in practice
# an int8 output whose step is coarser than this cannot tell scores apart (pixel boxes in one scale)
MAX_SCORE_STEP = 0.02
REEXPORT = "edgecnn export model=best.pt format=tflite precision=int8 io=int8 data=your.yaml"


def is_ultralytics(props: dict[str, str]) -> bool:
    """Metadata written by Ultralytics' exporter (and not by ours, whose values are JSON)."""
    return props.get("author", "").startswith("Ultralytics") and "input_size" not in props


def from_session(session, path: Path) -> UltralyticsLayout | None:
    """The layout of an ONNX Runtime session's model when Ultralytics exported it, else None."""
    props = session.get_modelmeta().custom_metadata_map
    if not is_ultralytics(props):
        return None
    input_type = session.get_inputs()[0].type
    if input_type != "tensor(float)":
        raise ValueError(f"{path}: an Ultralytics ONNX with {input_type} input; edgecnn runs float32 exports (half=False)")
    outputs = {o.name: o.shape for o in session.get_outputs()}
    return UltralyticsLayout({k: literal(v) for k, v in props.items()}, outputs, path, "ONNX")


def from_tflite(values: dict[str, Any], image_input: dict, tensors: list[dict], outputs: list[dict],
                path: Path) -> UltralyticsLayout:
    """The layout of an Ultralytics .tflite from its metadata and the interpreter's tensor details
    (`tensors`: all of them); `nchw` tells litert-torch's (B, 3, H, W) input from onnx2tf's (B, H, W, 3)."""
    shapes = {d["name"]: [int(v) for v in d["shape"]] for d in outputs}
    layout = UltralyticsLayout(values, shapes, path, "TFLite")
    h, w = layout.meta["input_size"]
    shape = [int(v) for v in image_input["shape"]]
    if shape[1:] not in ([h, w, 3], [3, h, w]):
        raise ValueError(f"{path}: input {shape}, but its metadata says imgsz {h}x{w} with 3 channels")
    layout.nchw = shape[1:] == [3, h, w]
    # the output, or the int8 tensor a float output is dequantized from (`_integer_quant`)
    shape = list(shapes.values())[0]
    coarse = [d for d in tensors if [int(v) for v in d["shape"]] == shape and np.issubdtype(d["dtype"], np.integer)
              and d["quantization"][0] > MAX_SCORE_STEP]
    if coarse:
        scale, name = coarse[0]["quantization"][0], coarse[0]["name"]
        raise ValueError(
            f"{path}: an Ultralytics int8 TFLite whose boxes (in pixels) and class scores share one int8 scale "
            f"({scale:.3g}, tensor '{name}'): every score is a multiple of {scale:.2f}, so it cannot detect. "
            f"Re-export from its .pt or ONNX with `{REEXPORT}` (boxes and scores get a scale each), "
            "or use its float32, float16 or dynamic-range int8 file"
        )
    return layout


def literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # plain strings such as task=detect are written without quotes


def tflite_metadata(data: bytes, path: Path) -> dict[str, Any] | None:
    """The metadata dict Ultralytics appends to a .tflite as a zip, or None when there is none."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            info = next((i for i in infos if i.filename == "metadata.json"), infos[0] if infos else None)
            if info is None or info.file_size > MAX_METADATA_BYTES:
                return None
            text = archive.read(info).decode("utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError):
        return None
    try:
        values = json.loads(text) if info.filename.endswith(".json") else ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable {info.filename} in the zip appended to the model ({err})") from None
    return values if isinstance(values, dict) and str(values.get("author", "")).startswith("Ultralytics") else None


def value(values: dict[str, Any], key: str, path: Path) -> Any:
    if key not in values:
        raise ValueError(f"{path}: Ultralytics metadata without '{key}'; re-export it with Ultralytics' `YOLO(...).export`")
    found = values[key]
    return literal(found) if isinstance(found, str) and key != "task" else found


def read_metadata(values: dict[str, Any], path: Path) -> dict[str, Any]:
    """Our artifact metadata from an Ultralytics export's metadata; other tasks are refused."""
    task = value(values, "task", path)
    if task != "detect":
        head = f" ({values['head']} head)" if "head" in values else ""
        raise ValueError(f"{path}: an Ultralytics '{task}' model{head}; edgecnn imports detection models (task=detect) only")
    names = value(values, "names", path)
    if isinstance(names, dict):  # int keys; strings in metadata.json
        names = {int(k) if str(k).isdigit() else k: v for k, v in names.items()}
        if set(names) != set(range(len(names))):
            raise ValueError(f"{path}: class ids in the 'names' metadata are not 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    imgsz = value(values, "imgsz", path)
    size = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(v) for v in imgsz]
    stride = value(values, "stride", path)
    if not isinstance(names, list) or len(size) != 2 or not isinstance(stride, int):
        raise ValueError(f"{path}: unreadable Ultralytics metadata (names={names!r:.60}, imgsz={imgsz!r}, stride={stride!r})")
    return {"task": "detect", "names": [str(n) for n in names], "input_size": size, "imgsz": max(size),
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "strides": level_strides(stride, size),
            "source": "ultralytics", "ultralytics_version": values.get("version")}


def level_strides(max_stride: int, size: list[int] | tuple[int, int], anchors: int | None = None) -> list[int]:
    """The strides of the head's levels: halving from `max_stride`, as many as make `anchors`
    columns (Ultralytics records only the largest stride); three (P3-P5) when unknown."""
    h, w = size
    for levels in (3, 4, 2, 5, 1):
        strides = [max_stride >> i for i in reversed(range(levels))]
        count = sum(-(-h // s) * -(-w // s) for s in strides)
        if anchors is None or count == anchors:
            return strides
    raise ValueError(f"no halving strides up to {max_stride} give {anchors} anchors at {h}x{w}")


class UltralyticsLayout:
    """One Ultralytics output `[B, 4 + nc, N]` or `[B, max_det, 6]` → `{"boxes", "scores"}`.

    `normalized`: boxes divided by the input size (TFLite routes other than 8.4's onnx2tf one);
    None until `box_units` has measured it on a TFLite file's output.
    """

    def __init__(self, values: dict[str, Any], outputs: dict[str, list], path: Path, fmt: str):
        self.path = path
        self.meta = read_metadata(values, path)
        self.normalized: bool | None = False if fmt == "ONNX" else None
        self.nchw = fmt == "ONNX"  # the image input's layout
        nc = len(self.meta["names"])
        if len(outputs) != 1:
            found = ", ".join(f"{name} {list(shape)}" for name, shape in outputs.items())
            raise ValueError(f"{path}: an Ultralytics {fmt} with {len(outputs)} outputs ({found}); "
                             "edgecnn imports detection models, which have one")
        output_shape = next(iter(outputs.values()))
        dims = [d if isinstance(d, int) else None for d in output_shape]
        self.xyxy = False
        if len(dims) == 3 and dims[1] == 4 + nc and dims[2] != NMS_COLUMNS:
            self.nms = False
            # an nms=True export's head decodes xyxy for its NMS: seen when the raw tensor is cut out
            args = value(values, "args", path) if "args" in values else {}
            self.xyxy = isinstance(args, dict) and bool(args.get("nms"))
            if dims[2] is not None:
                try:
                    self.meta["strides"] = level_strides(self.meta["strides"][-1], self.meta["input_size"], dims[2])
                except ValueError as err:
                    raise ValueError(f"{path}: output {list(output_shape)}: {err}") from None
        elif len(dims) == 3 and dims[2] == NMS_COLUMNS and fmt == "ONNX":
            self.nms = True
        else:
            nms = f" or, with NMS inside, [B, max_det, {NMS_COLUMNS}]" if fmt == "ONNX" else " (exported with nms=False)"
            raise ValueError(
                f"{path}: an Ultralytics detect {fmt} whose output is {list(output_shape)}; edgecnn reads one output "
                f"[B, 4+nc, N] = [B, {4 + nc}, N] (nc={nc}){nms}"
            )
        self.meta["ultralytics_layout"] = "nms" if self.nms else "xyxy" if self.xyxy else "xywh"

    def box_units(self, output: np.ndarray) -> None:
        """Tell pixel boxes from normalized ones on one output of the model (any input): box
        centres follow their anchors' centres (DFL keeps them within 7.5 strides), so the slope of
        centre on anchor centre is about 1 in pixels and 1 / size when normalized."""
        h, w = self.meta["input_size"]
        centres, _ = make_anchors((h, w), tuple(self.meta["strides"]))
        found = output[0, :2].T.astype(np.float64)  # (A, 2) box centres
        slope = float((found * centres).sum() / (centres.astype(np.float64) ** 2).sum())
        self.normalized = slope < (1.0 / max(h, w)) ** 0.5  # the geometric middle of 1 / size and 1
        self.meta["ultralytics_layout"] = "xywh normalized" if self.normalized else "xywh"

    def to_contract(self, output: np.ndarray) -> dict[str, np.ndarray]:
        centres, strides = make_anchors(tuple(self.meta["input_size"]), tuple(self.meta["strides"]))
        if self.nms:
            return self._from_detections(output, centres, strides)
        if output.shape[2] != len(centres):
            raise ValueError(f"{self.path}: {output.shape[2]} anchors, but strides {self.meta['strides']} at "
                             f"{self.meta['input_size']} make {len(centres)}")
        boxes = output[:, :4].transpose(0, 2, 1)
        if self.normalized:
            h, w = self.meta["input_size"]
            boxes = boxes * np.asarray([w, h, w, h], np.float32)
        return {"boxes": ltrb_from_xyxy(boxes if self.xyxy else cxcywh_to_xyxy(boxes), centres, strides),
                "scores": np.ascontiguousarray(output[:, 4:].transpose(0, 2, 1))}

    def _from_detections(self, output: np.ndarray, centres: np.ndarray, strides: np.ndarray) -> dict[str, np.ndarray]:
        """NMS rows put on the first max_det anchors (ltrb may be negative: the box need not hold
        its anchor), each row's score at its class and zero elsewhere, so decoding returns the rows."""
        batch, rows = output.shape[:2]
        if rows > len(centres):
            raise ValueError(f"{self.path}: {rows} NMS rows but only {len(centres)} anchors at {self.meta['input_size']}")
        boxes = np.zeros((batch, len(centres), 4), np.float32)
        scores = np.zeros((batch, len(centres), len(self.meta["names"])), np.float32)
        boxes[:, :rows] = ltrb_from_xyxy(output[..., :4], centres[:rows], strides[:rows])
        classes = np.clip(output[..., 5].astype(np.int64), 0, scores.shape[2] - 1)
        b, r = np.indices((batch, rows))
        scores[b, r, classes] = output[..., 4]
        return {"boxes": boxes, "scores": scores}


def ltrb_from_xyxy(xyxy: np.ndarray, centres: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Pixel boxes → distances left, top, right, bottom from each anchor centre in stride units
    (the inverse of `postprocess.decode_boxes`)."""
    ltrb = np.concatenate([centres - xyxy[..., :2], xyxy[..., 2:] - centres], axis=-1)
    return (ltrb / strides[:, None]).astype(np.float32)
