"""`edgecnn track model=det.tflite source=0 [reid=…] [save=…] [mot=…] [jsonl=…]`, a site's cameras in one
process: `edgecnn track cameras=site.yaml` (runtime/site.py), or on a det.txt:
`edgecnn track detections=det.txt out=results.txt [images=img1/] [reid=…]` (the tracker alone;
add `backfill=true interpolate=4` to refine the tracks offline, which a camera cannot)."""

from pathlib import Path

from edgecnn.config import ConfigError, Key, Schema, signature_keys
from edgecnn.runtime.app import APP_KEYS
from edgecnn.runtime.offline import REFINE_KEYS, track_detections

HELP = "real-time detection and DeepSORT tracking on a camera, stream or file (or on a MOT det.txt)"
KEYS = Schema(
    Schema(*(key for name, key in APP_KEYS.keys.items() if name != "config")),
    Key("detections", None, "a MOTChallenge det.txt: track these detections instead of running a detector"),
    Key("images", None, "with detections=: the sequence's img1 folder (needed for reid)"),
    signature_keys(track_detections, Key("min_confidence", ..., "with detections=: drop detections below this first",
                                         min=0.0)),
    Key("out", None, "output directory for relative save/mot/jsonl paths; with detections=: the results "
                     ".txt (or a directory to put results.txt in)"),
    REFINE_KEYS,
)


def run(cfg: dict) -> dict:
    if cfg["detections"]:
        return _track_detections(cfg)
    refined = [k for k, default in REFINE_KEYS.defaults().items() if cfg[k] != default]
    if refined:
        raise ConfigError(f"edgecnn track: {', '.join(refined)} works only with detections= (offline "
                          "refinement of the tracks of a whole det.txt)")
    from edgecnn.runtime.app import run as run_app

    app_cfg = {k: v for k, v in cfg.items() if k in APP_KEYS}
    if cfg["out"]:
        for key in ("save", "mot", "jsonl"):
            if app_cfg[key] and app_cfg[key] != "-" and not Path(app_cfg[key]).is_absolute():
                app_cfg[key] = str(Path(cfg["out"]) / app_cfg[key])
    return run_app(app_cfg)


def _track_detections(cfg: dict) -> dict:
    from edgecnn.runtime.tracker import TRACKER_KEYS
    from edgecnn.runtime.tracker.defaults import resolve

    if cfg["model"]:
        raise ConfigError("edgecnn track: give either model= (run a detector) or detections= (a det.txt), not both")
    if not cfg["out"]:
        raise ConfigError("edgecnn track: detections= needs out= (the results .txt to write)")
    cfg = resolve(cfg)  # public detections: TRACKER_KEYS' defaults, chosen on MOT15's (benchmarks/mot15.py)
    out = Path(cfg["out"])
    if out.suffix.lower() != ".txt":
        out = out / "results.txt"
    options = {k: cfg[k] for k in (*TRACKER_KEYS.keys, *REFINE_KEYS.keys)}
    return track_detections(cfg["detections"], out, images=cfg["images"], reid=cfg["reid"],
                            min_confidence=cfg["min_confidence"], **options)
