"""`edgecnn segment model=seg.tflite source=0 [save=…] [jsonl=…] [zones=…] [serve=…]`: the device's
segmentation app (`edgecnn.runtime.seg_app`) run from the host."""

from pathlib import Path

from edgecnn.config import Key, Schema
from edgecnn.runtime.seg_app import SEG_KEYS

HELP = "Real-time semantic segmentation on a camera, stream or file: overlay, class areas, zone shares."
KEYS = Schema(
    Schema(*(key for name, key in SEG_KEYS.keys.items() if name != "config")),
    Key("out", None, "output directory for relative save/jsonl paths"),
)


def run(cfg: dict) -> dict:
    from edgecnn.runtime.seg_app import run as run_app

    app_cfg = {k: v for k, v in cfg.items() if k in SEG_KEYS}
    if cfg["out"]:
        for key in ("save", "jsonl"):
            if app_cfg[key] and app_cfg[key] != "-" and not Path(app_cfg[key]).is_absolute():
                app_cfg[key] = str(Path(cfg["out"]) / app_cfg[key])
    return run_app(app_cfg)
