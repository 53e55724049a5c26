"""Ultralytics detection ONNX exports run as they are: their metadata and outputs in our contract.

`YOLO(...).export(format="onnx")` writes one output, either `[B, 4 + nc, N]` (boxes as centre
x, y, width, height in input pixels, then sigmoid class scores, one column per anchor) or, with
NMS inside (`nms=True`, or an end-to-end head), `[B, max_det, 6]` rows `x1, y1, x2, y2, score,
class`. `UltralyticsLayout` turns either into `boxes (B, A, 4)` ltrb distances in stride units and
`scores (B, A, C)`, so the detector, NMS and tracker run them like our own exports. Their
metadata_props are Python literals (`str()` of dicts and lists): read with `ast.literal_eval`,
which evaluates nothing but literals.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime.boxes import cxcywh_to_xyxy
from edgecnn.runtime.postprocess import make_anchors

NMS_COLUMNS = 6  # x1, y1, x2, y2, score, class


def is_ultralytics(props: dict[str, str]) -> bool:
    """Metadata written by Ultralytics' exporter (and not by ours, whose values are JSON)."""
    return props.get("author", "").startswith("Ultralytics") and "input_size" not in props


def from_session(session, path: Path) -> UltralyticsLayout | None:
    """The layout of an ONNX Runtime session's model when Ultralytics exported it, else None."""
    props = session.get_modelmeta().custom_metadata_map
    if not is_ultralytics(props):
        return None
    outputs = {o.name: o.shape for o in session.get_outputs()}
    return UltralyticsLayout(props, outputs, path, session.get_inputs()[0].type)


def literal(props: dict[str, str], key: str, path: Path) -> Any:
    if key not in props:
        raise ValueError(f"{path}: Ultralytics metadata without '{key}'; re-export it with `YOLO(...).export(format='onnx')`")
    try:
        return ast.literal_eval(props[key])
    except (ValueError, SyntaxError):
        return props[key]  # plain strings such as task=detect are written without quotes


def read_metadata(props: dict[str, str], path: Path) -> dict[str, Any]:
    """Our artifact metadata from an Ultralytics export's metadata_props; other tasks are refused."""
    task = literal(props, "task", path)
    if task != "detect":
        head = f" ({props['head']} head)" if "head" in props else ""
        raise ValueError(f"{path}: an Ultralytics '{task}' model{head}; edgecnn imports detection models (task=detect) only")
    names = literal(props, "names", path)
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise ValueError(f"{path}: class ids in the 'names' metadata are not 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    imgsz = literal(props, "imgsz", path)
    size = [int(imgsz), int(imgsz)] if isinstance(imgsz, int) else [int(v) for v in imgsz]
    stride = literal(props, "stride", path)
    if not isinstance(names, list) or len(size) != 2 or not isinstance(stride, int):
        raise ValueError(f"{path}: unreadable Ultralytics metadata (names={names!r:.60}, imgsz={imgsz!r}, stride={stride!r})")
    return {"task": "detect", "names": [str(n) for n in names], "input_size": size, "imgsz": max(size),
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "strides": level_strides(stride, size),
            "source": "ultralytics", "ultralytics_version": props.get("version")}


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
    """One Ultralytics output `[B, 4 + nc, N]` or `[B, max_det, 6]` → `{"boxes", "scores"}`."""

    def __init__(self, props: dict[str, str], outputs: dict[str, list], path: Path, input_type: str = "tensor(float)"):
        self.path = path
        self.meta = read_metadata(props, path)
        if input_type != "tensor(float)":
            raise ValueError(f"{path}: an Ultralytics ONNX with {input_type} input; edgecnn runs float32 exports (half=False)")
        nc = len(self.meta["names"])
        if len(outputs) != 1:
            found = ", ".join(f"{name} {list(shape)}" for name, shape in outputs.items())
            raise ValueError(f"{path}: an Ultralytics ONNX with {len(outputs)} outputs ({found}); "
                             "edgecnn imports detection models, which have one")
        output_shape = next(iter(outputs.values()))
        dims = [d if isinstance(d, int) else None for d in output_shape]
        self.xyxy = False
        if len(dims) == 3 and dims[1] == 4 + nc and dims[2] != NMS_COLUMNS:
            self.nms = False
            # an nms=True export's head decodes xyxy for its NMS: seen when the raw tensor is cut out
            args = literal(props, "args", path) if "args" in props else {}
            self.xyxy = isinstance(args, dict) and bool(args.get("nms"))
            if dims[2] is not None:
                try:
                    self.meta["strides"] = level_strides(self.meta["strides"][-1], self.meta["input_size"], dims[2])
                except ValueError as err:
                    raise ValueError(f"{path}: output {list(output_shape)}: {err}") from None
        elif len(dims) == 3 and dims[2] == NMS_COLUMNS:
            self.nms = True
        else:
            raise ValueError(
                f"{path}: an Ultralytics detect ONNX whose output is {list(output_shape)}; edgecnn reads one output "
                f"[B, 4+nc, N] = [B, {4 + nc}, N] (nc={nc}) or, with NMS inside, [B, max_det, {NMS_COLUMNS}]"
            )
        self.meta["ultralytics_layout"] = "nms" if self.nms else "xyxy" if self.xyxy else "xywh"

    def to_contract(self, output: np.ndarray) -> dict[str, np.ndarray]:
        centres, strides = make_anchors(tuple(self.meta["input_size"]), tuple(self.meta["strides"]))
        if self.nms:
            return self._from_detections(output, centres, strides)
        if output.shape[2] != len(centres):
            raise ValueError(f"{self.path}: {output.shape[2]} anchors, but strides {self.meta['strides']} at "
                             f"{self.meta['input_size']} make {len(centres)}")
        boxes = output[:, :4].transpose(0, 2, 1)
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
