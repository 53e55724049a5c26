"""PyTorch → ONNX: export, simplify (onnxslim), check, and carry the model's metadata.

Uses the TorchScript-based exporter (`dynamo=False`): the torch.export-based one needs
onnxscript, which the lock does not carry, and gives nothing a plain CNN needs.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from edgecnn import __version__
from edgecnn.fileio import atomic_path
from edgecnn.runtime.backends import OUTPUTS
from edgecnn.runtime.preprocess import input_hw

LOG = logging.getLogger(__name__)
INPUT_NAME = "images"
META_FROM_CHECKPOINT = ("task", "names", "mean", "std", "strides", "run_hash")


def artifact_meta(meta: dict[str, Any], size: tuple[int, int], **extra: Any) -> dict[str, Any]:
    """What an exported artifact carries: the checkpoint's meta, its input size and edgecnn's version."""
    missing = [k for k in ("task", "names", "mean", "std") if k not in meta]
    if missing:
        raise ValueError(f"model metadata lacks {', '.join(missing)}")
    out = {k: meta[k] for k in META_FROM_CHECKPOINT if k in meta}
    out.update(input_size=list(size), imgsz=max(size), edgecnn_version=__version__, **extra)
    return out


def export_onnx(
    model,
    meta: dict[str, Any],
    path: str | os.PathLike,
    imgsz: int | list[int] = 320,
    dynamic: bool = False,
    opset: int = 17,
    seg_head: str | None = None,
    seg_upsample: str = "linear",
    batch: int = 1,
) -> Path:
    """Write `model` (normalized float NCHW in, outputs per edgecnn/models/__init__.py) as a checked ONNX file.

    `dynamic` leaves batch, height and width free; the metadata still records `imgsz`. Otherwise the
    model takes `batch` images per call (TFLite keeps it: `Backend.predict` fills the last call).
    A segmentation model's graph ends in `seg_head` (`export.segment`; default `DEFAULT_HEAD`), and
    `seg_upsample` is how the device brings a `stride` head's logits to the input size.
    """
    import onnx
    import onnxslim
    import torch

    size = input_hw(imgsz)
    outputs = list(OUTPUTS[meta["task"]])
    model = model.eval().cpu()
    dummy = torch.zeros(batch, 3, *size)
    axes = None
    if dynamic:
        axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}} | {name: {0: "batch"} for name in outputs}
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with torch.no_grad():
            torch.onnx.export(
                model, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=outputs,
                opset_version=opset, dynamic_axes=axes, do_constant_folding=True, dynamo=False,
            )
        graph, extra = onnx.load(str(tmp)), {}
        if meta["task"] == "segment":
            from edgecnn.export.segment import DEFAULT_HEAD, set_seg_head

            extra = set_seg_head(graph, seg_head or DEFAULT_HEAD, seg_upsample)
        graph = onnxslim.slim(graph)  # also drops what computed the size of a cut Resize
        onnx.checker.check_model(graph, full_check=True)
        set_onnx_metadata(graph, artifact_meta(meta, size, format="onnx", dynamic=dynamic, opset=opset, **extra))
        onnx.save(graph, str(tmp))
    LOG.info("ONNX model written to %s", path)
    return path


def set_onnx_metadata(graph, meta: dict[str, Any]) -> None:
    """One `metadata_props` entry per key, its value as JSON (ORT: custom_metadata_map)."""
    del graph.metadata_props[:]
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
