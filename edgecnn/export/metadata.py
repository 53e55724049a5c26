"""Add entries to an exported artifact's own metadata after the fact (e.g. the operating point
measured on validation data), keeping everything else in the file as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgecnn.fileio import atomic_write_bytes


def update_artifact_meta(path: str | os.PathLike, entries: dict[str, Any]) -> Path:
    """Rewrite the .onnx or .tflite at `path` atomically with `entries` merged into its metadata."""
    from edgecnn.runtime.backends import META_KEY, json_or_text, read_tflite_metadata

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        from edgecnn.export.onnx import set_onnx_metadata

        graph = onnx.load(str(path))
        meta = {p.key: json_or_text(p.value) for p in graph.metadata_props}
        set_onnx_metadata(graph, {**meta, **entries})
        return atomic_write_bytes(path, graph.SerializeToString())
    if path.suffix.lower() == ".tflite":
        from edgecnn.export.tflite import with_tflite_metadata

        data = path.read_bytes()
        meta = json.loads(read_tflite_metadata(data, path)[META_KEY].decode("utf-8"))
        return atomic_write_bytes(path, with_tflite_metadata(data, {META_KEY: json.dumps({**meta, **entries}).encode()}))
    raise ValueError(f"{path}: metadata can be written into .onnx and .tflite artifacts only")


def store_operating_point(artifact, scores: dict, data, split: str) -> dict:
    """Write `scores["operating_point"]` (from the detector metrics of `edgecnn.evaluate`) into the
    artifact's metadata with where it was measured; returns what was written."""
    point = {**scores["operating_point"], "measured_on": f"{data} {split} ({scores['images']} images)"}
    update_artifact_meta(artifact, {"operating_point": point})
    return point
