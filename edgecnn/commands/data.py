"""`edgecnn data synth|check|calib|crops|mot …`: make, inspect and sample datasets.

  edgecnn data synth kind=detect out=datasets/synth n=800 imgsz=320 seed=0
  edgecnn data synth kind=video out=datasets/synth-video n=4 frames=240
  edgecnn data synth kind=reid out=datasets/synth-reid n=300 per_id=16
  edgecnn data check data=datasets/synth/data.yaml
  edgecnn data calib data=datasets/synth/data.yaml n=200 out=calibration/synth
  edgecnn data crops source=datasets/synth-video/train out=datasets/synth-reid
  edgecnn data mot source=my-camera/ names=[person] train_frames=1-600 val_frames=601-750 out=datasets/cam
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecnn.config import Key, Schema

HELP = ("Make synthetic datasets, check and summarize datasets, sample calibration sets, cut ReID crops, "
        "turn annotated MOT sequences or videos into a YOLO dataset.")
POSITIONAL = ("action",)
KEYS = Schema(
    Key("action", "check", "what to do", choices=("synth", "check", "calib", "crops", "mot")),
    Key("kind", "detect", "synth: which dataset to make (reid: identity crops for a ReID embedder)",
        choices=("detect", "video", "classify", "reid")),
    Key("out", None, "output directory (synth: runs/data/synth-<kind>, check: runs/data/check/<data name>, "
                     "calib: calibration/<data name>, crops: runs/data/crops, mot: runs/data/mot)", type=str),
    Key("n", None, "synth: train images (detect 800, classify 2000), sequences (video 4) or identities (reid 300); "
                   "calib: images (200)", type=int, min=1),
    Key("imgsz", None, "synth: longer image side (detect 320, classify 32, video frame width 640)", type=int, min=16),
    Key("frames", 240, "synth kind=video: frames per sequence", min=2),
    Key("images", False, "synth kind=video: also write the frames as img1/*.jpg"),
    Key("camera_motion", 0.0, "synth kind=video: film with a panning, shaking camera over this share of the view "
        "(0: a fixed camera)", min=0.0, max=0.4),
    Key("classes", None, "synth kind=detect|video: draw only these classes of person, car, sign, ball, box "
        "(video: with person; default: all)", type=list),
    Key("per_id", 16, "synth kind=reid: crops per identity", min=2),
    Key("seed", 0, "random seed: the same seed gives the same bytes", min=0),
    Key("force", False, "synth: remake the dataset even when one with the same config is there"),
    Key("data", None, "check/calib: a data.yaml (detection) or an ImageFolder directory (classification)", type=str),
    Key("split", "train", "calib: the split to sample from", choices=("train", "val", "test")),
    Key("source", None, "crops, mot: a MOTChallenge directory (sequences with gt/gt.txt and img1/ or an .mp4)",
        type=str),
    Key("val_fraction", 0.2, "crops and synth kind=reid: share of identities held out for validation", min=0.0, max=0.9),
    Key("min_visibility", None, "crops, mot: skip boxes less visible than this (gt.txt column 9; crops 0.5, mot 0)",
        type=float, min=0.0, max=1.0),
    Key("step", None, "crops, mot: use every step-th frame (crops 3, mot 1)", type=int, min=1),
    Key("max_per_id", 60, "crops: at most this many crops per identity", min=1),
    Key("names", ["person"], "mot: class names of MOT class ids 1, 2, ... (later ids are left out; -1: the first)",
        type=list),
    Key("train_frames", None, "mot: frames first-last of each sequence to train on (default: the first 60 %)"),
    Key("val_frames", None, "mot: frames to validate on (default: the next 20 %)"),
    Key("test_frames", None, "mot: frames kept as a MOT sequence to track (default: those after the others)"),
)

LOG = logging.getLogger("edgecnn.data")


def code_version() -> int:
    """The synthetic generators' version: the pipeline remakes data that an older generator wrote."""
    from edgecnn.data.synth import GENERATOR_VERSION

    return GENERATOR_VERSION


def run(cfg: dict) -> dict:
    actions = {"synth": run_synth, "check": run_check, "calib": run_calib, "crops": run_crops, "mot": run_mot}
    return actions[cfg["action"]](cfg)


def need(cfg: dict, key: str) -> str:
    from edgecnn.config import ConfigError

    if not cfg[key]:
        raise ConfigError(f"edgecnn data {cfg['action']}: needs {key}=…")
    return cfg[key]


def run_synth(cfg: dict) -> dict:
    from edgecnn.data import synth

    kind = cfg["kind"]
    out = Path(cfg["out"] or f"runs/data/synth-{kind}")
    if kind == "detect":
        info = synth.synth_detect(out, n=cfg["n"] or 800, imgsz=cfg["imgsz"] or 320, seed=cfg["seed"], force=cfg["force"],
                                   classes=cfg["classes"])
        counts = info["splits"]
        return {"images": counts["train"]["images"] + counts["val"]["images"],
                "boxes": counts["train"]["boxes"] + counts["val"]["boxes"], "seconds": info["seconds"],
                "artifacts": {"root": str(out), "data_yaml": str(out / "data.yaml")}}
    if kind == "classify":
        info = synth.synth_classify(out, n=cfg["n"] or 2000, imgsz=cfg["imgsz"] or 32, seed=cfg["seed"], force=cfg["force"])
        return {"images": sum(s["images"] for s in info["splits"].values()), "seconds": info["seconds"],
                "artifacts": {"root": str(out)}}
    if kind == "reid":
        info = synth.synth_reid(out, n=cfg["n"] or 300, per_id=cfg["per_id"], seed=cfg["seed"],
                                val_fraction=cfg["val_fraction"], force=cfg["force"])
        return {"identities": cfg["n"] or 300, "images": (cfg["n"] or 300) * cfg["per_id"], "seconds": info["seconds"],
                "artifacts": {"root": str(out)}}
    width = cfg["imgsz"] or 640
    info = synth.synth_video(out, sequences=cfg["n"] or 4, frames=cfg["frames"], width=width, height=width * 3 // 4,
                             seed=cfg["seed"], images=cfg["images"], force=cfg["force"],
                             camera_motion=cfg["camera_motion"], classes=cfg["classes"])
    test = [s for s in info["sequences"] if s["split"] == "test"][0]
    artifacts = {"root": str(out), "videos": str(out), "test": str(out / "test"),
                 "test_video": str(out / test["video"]), "test_gt": str(out / test["dir"] / "gt" / "gt.txt")}
    if any(s["split"] == "train" for s in info["sequences"]):
        artifacts["train"] = str(out / "train")
    return {"sequences": len(info["sequences"]), "frames": sum(s["frames"] for s in info["sequences"]),
            "seconds": info["seconds"], "artifacts": artifacts}


def dataset_name(data: str) -> str:
    """`…/coco128/data.yaml` → coco128, `…/digits` → digits."""
    path = Path(data).resolve()
    return path.parent.name if path.suffix in (".yaml", ".yml") else path.name


def holds_identities(path: Path) -> bool:
    """ReID crops (from `data crops` or `data synth kind=reid`) hold other identities in val by design."""
    import json

    from edgecnn.data.crops import RECORD

    synth = path / "synth.json"
    return (path / RECORD).is_file() or (synth.is_file() and json.loads(synth.read_text())["config"]["kind"] == "reid")


def load_any(data: str):
    """(spec, scans, summary) for a data.yaml or an ImageFolder directory."""
    from edgecnn.data import dataset_format, imagefolder, open_dataset, summary, yolo

    path = Path(data)
    if dataset_format(path) == "imagefolder":
        spec = open_dataset(path, shared_classes=not holds_identities(path))
        scans = {s: imagefolder.scan_folder(spec, s) for s in spec.splits}
        return spec, scans, summary.summarize_classification(spec, scans)
    spec = open_dataset(path)
    scans = {s: yolo.scan_split(spec, s, progress=True) for s in spec.splits}
    return spec, scans, summary.summarize_detection(spec, scans)


def run_check(cfg: dict) -> dict:
    import sys

    from edgecnn.data import summary

    data = need(cfg, "data")
    _, scans, result = load_any(data)
    out = Path(cfg["out"] or Path("runs/data/check") / dataset_name(data))
    print(summary.format_table(result), file=sys.stderr)
    saved = summary.save_summary(result, out)
    splits = result["splits"].values()
    metrics = {"images": sum(s["images"] for s in splits), "corrupt": sum(s["corrupt"] for s in splits),
               "classes": len(result["names"])}
    if result["task"] == "identities":
        metrics["classes"] = sum(s["identities"] for s in splits)
    if result["task"] == "detect":
        metrics["boxes"] = sum(s["boxes"] for s in splits)
        metrics["backgrounds"] = sum(s["backgrounds"] for s in splits)
    return {**metrics, "artifacts": {k: str(v) for k, v in saved.items()}}


def run_calib(cfg: dict) -> dict:
    from edgecnn.data import calib

    data = need(cfg, "data")
    out = Path(cfg["out"] or Path("calibration") / dataset_name(data))
    info = calib.sample_calibration(data, out, n=cfg["n"] or 200, split=cfg["split"], seed=cfg["seed"])
    return {"images": info["n"], "strata": len(info["strata"]),
            "artifacts": {"calibration": str(out), "calib_json": str(out / "calib.json")}}


def run_crops(cfg: dict) -> dict:
    from edgecnn.data import crops

    out = Path(cfg["out"] or "runs/data/crops")
    info = crops.cut_identity_crops(need(cfg, "source"), out, val_fraction=cfg["val_fraction"],
                                    min_visibility=_or(cfg["min_visibility"], 0.5), step=_or(cfg["step"], 3),
                                    max_per_id=cfg["max_per_id"], seed=cfg["seed"])
    return {"identities": info["identities"], "crops": info["crops"], "artifacts": {"root": str(out)}}


def run_mot(cfg: dict) -> dict:
    from edgecnn.config import ConfigError
    from edgecnn.data.mot_yolo import mot_to_yolo, parse_range

    out = Path(cfg["out"] or "runs/data/mot")
    try:
        ranges = {s: parse_range(cfg[f"{s}_frames"], f"{s}_frames") for s in ("train", "val", "test")}
    except ValueError as err:
        raise ConfigError(f"edgecnn data mot: {err}") from None
    info = mot_to_yolo(need(cfg, "source"), out, [str(n) for n in cfg["names"]], **ranges,
                       min_visibility=_or(cfg["min_visibility"], 0.0), step=_or(cfg["step"], 1))
    artifacts = {"root": str(out), "data_yaml": str(out / "data.yaml")}
    tests = sorted(p.parent.parent for p in (out / "test").glob("*/gt/gt.txt"))
    if tests:
        artifacts.update(test=str(out / "test"), test_video=str(tests[0] / f"{tests[0].name}.mp4"),
                         test_gt=str(tests[0] / "gt" / "gt.txt"))
    splits = info["splits"]
    return {"images": splits["train"]["images"] + splits["val"]["images"],
            "boxes": splits["train"]["boxes"] + splits["val"]["boxes"], "sequences": len(info["sequences"]),
            "artifacts": artifacts}


def _or(value, default):
    return default if value is None else value
