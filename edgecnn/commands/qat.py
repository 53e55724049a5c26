"""`edgecnn qat`: int8 quantization-aware training with NNCF, gated against the float parent."""

from __future__ import annotations

from edgecnn.compress.workflow import qat_checkpoint
from edgecnn.config import Key, Schema, signature_keys
from edgecnn.train.keys import FINETUNE_KEYS, finetune_config

HELP = "int8 quantization-aware training"
POSITIONAL = ("model",)
# Fine-tuning takes every training key except these: `epochs` is the QAT's own, the weights are the model's.

KEYS = Schema(
    Key("model", None, "the float checkpoint to quantize (an edgecnn .pt, pruned or not)", required=True),
    signature_keys(  # defaults: qat_checkpoint's
        qat_checkpoint,
        Key("calib", ..., "calibration images: an `edgecnn data calib` set or an image folder "
            "(default: training images)", type=str),
        Key("subset_size", ..., "calibration images used for the initial int8 ranges", min=1),
        Key("epochs", ..., "QAT fine-tuning epochs (0: post-training quantization only)", min=0),
        Key("lr_scale", ..., "QAT learning rate as a fraction of lr0", min=0),
        Key("max_map_drop", ..., "fail (GateError) when the metric drops by more points than this against the "
            "float model"),
        names={"max_map_drop": "max_drop"},
    ),
    FINETUNE_KEYS,
    Key("out", "runs/qat", "output directory (qat.pt, qat.onnx with Q/DQ, qat.json)"),
)


def run(cfg: dict) -> dict:
    from pathlib import Path

    train_cfg = finetune_config(cfg)
    return qat_checkpoint(cfg["model"], train_cfg, Path(cfg["out"]), calib=cfg["calib"], epochs=cfg["epochs"],
                          lr_scale=cfg["lr_scale"], subset_size=cfg["subset_size"], max_drop=cfg["max_map_drop"])
