"""`edgecnn prune`: structured channel pruning to a MAC budget in prune → fine-tune rounds, gated."""

from __future__ import annotations

from edgecnn.compress import PRUNING_CRITERIA
from edgecnn.compress.workflow import prune_checkpoint
from edgecnn.config import Key, Schema, signature_keys
from edgecnn.train.keys import FINETUNE_KEYS, finetune_config

HELP = "structured channel pruning with fine-tuning"
POSITIONAL = ("model",)

KEYS = Schema(
    Key("model", None, "the checkpoint to prune (an edgecnn .pt)", required=True),
    signature_keys(  # defaults: prune_checkpoint's
        prune_checkpoint,
        Key("target_macs", ..., "fraction of the model's MACs to KEEP (0.5: half the multiply-accumulates)",
            min=0.01, max=1.0),
        Key("steps", ..., "prune → fine-tune rounds; each removes the same fraction of what is left", min=1),
        Key("criterion", ..., "channel importance: " + ", ".join(f"{k} ({v})" for k, v in PRUNING_CRITERIA.items()),
            choices=tuple(PRUNING_CRITERIA)),
        Key("global", ..., "rank channels across all layers (false: the same ratio in every layer)"),
        Key("round_to", ..., "keep channel counts multiples of this (fast int8 kernels); 1 turns it off", min=1),
        Key("max_layer_ratio", ..., "never remove more than this fraction of one layer's channels", min=0.05, max=0.95),
        Key("ft_epochs", ..., "fine-tuning epochs after each round (0: prune only)", min=0),
        Key("max_map_drop", ..., "fail (GateError) when the metric (mAP50_95, top1, embedder mAP, mIoU) drops by more "
            "points than this"),
        Key("latency", ..., "measure single-image CPU latency (torch and ONNX Runtime) before and after"),
        names={"global": "global_pruning", "max_map_drop": "max_drop"},
    ),
    FINETUNE_KEYS,
    Key("out", "runs/prune", "output directory (pruned.pt, prune.json, prune.png, step*/ training runs)"),
)


def run(cfg: dict) -> dict:
    from pathlib import Path

    train_cfg = finetune_config(cfg)
    return prune_checkpoint(
        cfg["model"], train_cfg, Path(cfg["out"]), target_macs=cfg["target_macs"], steps=cfg["steps"],
        criterion=cfg["criterion"], global_pruning=cfg["global"], round_to=cfg["round_to"],
        max_layer_ratio=cfg["max_layer_ratio"], ft_epochs=cfg["ft_epochs"], max_drop=cfg["max_map_drop"],
        latency=cfg["latency"],
    )
