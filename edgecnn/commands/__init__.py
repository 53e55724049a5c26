"""The commands: one module per `edgecnn <command>`, each with `HELP`, `KEYS` and `run(cfg)`.

`COMMANDS` is the registry (name → one line for `edgecnn --help`); the command line and the
pipeline's stage runner both look commands up here. Modules load on first use, so listing
the commands imports no heavy library.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS = {
    "data": "make synthetic datasets, check and summarize datasets, sample calibration sets",
    "train": "train or fine-tune a classifier, detector or ReID embedder",
    "val": "validate a checkpoint, ONNX or TFLite model on a dataset",
    "prune": "structured channel pruning with fine-tuning",
    "qat": "int8 quantization-aware training",
    "export": "export a checkpoint to ONNX or TFLite (fp32, fp16, int8)",
    "bench": "measure latency, throughput and memory of a model",
    "track": "real-time detection and DeepSORT tracking on a camera, stream or file",
    "mot-eval": "score MOTChallenge results against ground truth",
    "summary": "per-layer table of shapes, parameters, activation memory and MACs",
    "pipeline": "run a staged pipeline YAML with caching",
    "bundle": "build a self-contained device bundle",
    "deploy": "copy a bundle to a device over SSH and install it",
    "check-device": "run a bundle in an emulated arm64 root (or on a device) and compare it with this host",
}


def load_command(name: str) -> ModuleType:
    """The module of command `name` (`mot-eval` → `edgecnn.commands.mot_eval`)."""
    return importlib.import_module(f"edgecnn.commands.{name.replace('-', '_')}")
