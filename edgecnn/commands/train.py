"""`edgecnn train`: train or fine-tune a classifier, detector, ReID embedder or segmenter."""

from __future__ import annotations

from pathlib import Path

from edgecnn.config import Key, Schema
from edgecnn.train.keys import FINETUNE_KEYS, TRAIN_KEYS

HELP = "train or fine-tune a classifier, detector, ReID embedder or segmenter"
# Keys that may change when a run resumes; the rest come from the interrupted run.
RESUME_OVERRIDES = ("device", "devices", "workers", "plots")

KEYS = Schema(
    Key("model", "yolo-n", "model name from the registry (see `edgecnn summary`)"),
    TRAIN_KEYS,
    Key("out", "runs/train", "output directory (best.pt, last.pt, results.csv/json, plots)"),
    Key("resume", False, "continue an interrupted run: true (OUT/last.pt) or a last.pt path", type=(bool, str)),
)


def run(cfg: dict) -> dict:
    from edgecnn.models import load_checkpoint, read_checkpoint
    from edgecnn.train.setup import prepare_model
    from edgecnn.train.trainer import Trainer

    out = Path(cfg["out"])
    if cfg["resume"]:
        last = out / "last.pt" if cfg["resume"] is True else Path(cfg["resume"])
        ckpt = read_checkpoint(last)
        state = ckpt.get("train_state")
        if not state:
            raise ValueError(f"{last}: has no train_state to resume from (best.pt never does; use last.pt)")
        model, meta = load_checkpoint(last)
        saved = dict(state["cfg"])
        saved.update({k: cfg[k] for k in RESUME_OVERRIDES})
        train_cfg = {k: saved.get(k, cfg[k]) for k in TRAIN_KEYS.keys}
        return Trainer(model.train(), train_cfg, last.parent, meta, pretrained=state.get("pretrained", ()),
                       resume_state=state).fit()
    FINETUNE_KEYS.check_required(cfg, "edgecnn train")  # data, which a resumed run reads from last.pt
    model, meta, pretrained = prepare_model(cfg["model"], cfg["data"], cfg["weights"], cfg["seed"], cfg["imgsz"],
                                            cfg["backbone_weights"])
    train_cfg = {k: cfg[k] for k in TRAIN_KEYS.keys}
    return Trainer(model.train(), train_cfg, out, meta, pretrained=pretrained).fit()
