"""`edgecnn data synth|check|calib|crops|mot …`: make, inspect and sample datasets.

  edgecnn data synth kind=detect out=datasets/synth n=800 imgsz=320 seed=0
  edgecnn data synth kind=video out=datasets/synth-video n=4 frames=240
  edgecnn data synth kind=reid out=datasets/synth-reid n=300 per_id=16
  edgecnn data synth kind=segment out=datasets/synth-seg n=400 imgsz=320
  edgecnn data check data=datasets/synth/data.yaml
  edgecnn data calib data=datasets/synth/data.yaml n=200 out=calibration/synth
  edgecnn data crops source=datasets/synth-video/train out=datasets/synth-reid
  edgecnn data mot source=my-camera/ names=[person] train_frames=1-600 val_frames=601-750 out=datasets/cam
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Callable

from edgecnn.config import Key, Schema
from edgecnn.data.calib import sample_calibration
from edgecnn.data.crops import cut_identity_crops
from edgecnn.data.mot_yolo import mot_to_yolo
from edgecnn.data.synth import synth_classify, synth_detect, synth_reid, synth_segment, synth_video


def _default(func: Callable, name: str) -> Any:
    """The default of `func`'s parameter `name`: the one statement of it, quoted in the help below."""
    return inspect.signature(func).parameters[name].default


HELP = ("make, check and sample datasets (data synth|check|calib), cut ReID crops (data crops), "
        "MOT sequences or videos → a YOLO dataset (data mot)")
POSITIONAL = ("action",)
KEYS = Schema(
    Key("action", "check", "what to do", choices=("synth", "check", "calib", "crops", "mot")),
    Key("kind", "detect", "synth: which dataset to make (reid: identity crops for a ReID embedder)",
        choices=("detect", "video", "classify", "reid", "segment")),
    Key("out", None, "output directory (synth: runs/data/synth-<kind>, check: runs/data/check/<data name>, "
                     "calib: calibration/<data name>, crops: runs/data/crops, mot: runs/data/mot)", type=str),
    Key("n", None, f"synth: train images (detect {_default(synth_detect, 'n')}, classify {_default(synth_classify, 'n')}, "
                   f"segment {_default(synth_segment, 'n')}), "
                   f"sequences (video {_default(synth_video, 'sequences')}) or identities (reid {_default(synth_reid, 'n')}); "
                   f"calib: images ({_default(sample_calibration, 'n')})", type=int, min=1),
    Key("imgsz", None, f"synth: longer image side (detect {_default(synth_detect, 'imgsz')}, segment "
                       f"{_default(synth_segment, 'imgsz')}, classify "
                       f"{_default(synth_classify, 'imgsz')}, video frame width {_default(synth_video, 'width')})",
        type=int, min=16),
    Key("frames", _default(synth_video, "frames"), "synth kind=video: frames per sequence", min=2),
    Key("images", _default(synth_video, "images"), "synth kind=video: also write the frames as img1/*.jpg"),
    Key("camera_motion", _default(synth_video, "camera_motion"),
        "synth kind=video: film with a panning, shaking camera over this share of the view "
        "(0: a fixed camera)", min=0.0, max=0.4),
    Key("per_id", _default(synth_reid, "per_id"), "synth kind=reid: crops per identity", min=2),
    Key("seed", 0, "random seed: the same seed gives the same bytes", min=0),
    Key("force", False, "synth: remake the dataset even when one with the same config is there"),
    Key("data", None, "check/calib: a data.yaml (detection) or an ImageFolder directory (classification)", type=str),
    Key("split", _default(sample_calibration, "split"), "calib: the split to sample from", choices=("train", "val", "test")),
    Key("source", None, "crops, mot: a MOTChallenge directory (sequences with gt/gt.txt and img1/ or an .mp4)",
        type=str),
    Key("val_fraction", _default(cut_identity_crops, "val_fraction"),
        "crops and synth kind=reid: share of identities held out for validation", min=0.0, max=0.9),
    Key("min_visibility", None, "crops, mot: skip boxes less visible than this (gt.txt column 9; crops "
        f"{_default(cut_identity_crops, 'min_visibility')}, mot {_default(mot_to_yolo, 'min_visibility')})",
        type=float, min=0.0, max=1.0),
    Key("step", None, f"crops, mot: use every step-th frame (crops {_default(cut_identity_crops, 'step')}, "
                      f"mot {_default(mot_to_yolo, 'step')})", type=int, min=1),
    Key("max_per_id", _default(cut_identity_crops, "max_per_id"), "crops: at most this many crops per identity", min=1),
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


def _given(cfg: dict, **params: str) -> dict:
    """{parameter: cfg[key]} for the keys the user set; the others keep the function's default."""
    return {param: cfg[key] for param, key in params.items() if cfg[key] is not None}


def run_synth(cfg: dict) -> dict:
    kind = cfg["kind"]
    out = Path(cfg["out"] or f"runs/data/synth-{kind}")
    if kind == "detect":
        info = synth_detect(out, **_given(cfg, n="n", imgsz="imgsz"), seed=cfg["seed"], force=cfg["force"])
        counts = info["splits"]
        return {"images": counts["train"]["images"] + counts["val"]["images"],
                "boxes": counts["train"]["boxes"] + counts["val"]["boxes"], "seconds": info["seconds"],
                "artifacts": {"root": str(out), "data_yaml": str(out / "data.yaml")}}
    if kind == "segment":
        info = synth_segment(out, **_given(cfg, n="n", imgsz="imgsz"), seed=cfg["seed"], force=cfg["force"])
        return {"images": sum(s["images"] for s in info["splits"].values()), "seconds": info["seconds"],
                "artifacts": {"root": str(out), "data_yaml": str(out / "data.yaml")}}
    if kind == "classify":
        info = synth_classify(out, **_given(cfg, n="n", imgsz="imgsz"), seed=cfg["seed"], force=cfg["force"])
        return {"images": sum(s["images"] for s in info["splits"].values()), "seconds": info["seconds"],
                "artifacts": {"root": str(out)}}
    if kind == "reid":
        info = synth_reid(out, **_given(cfg, n="n"), per_id=cfg["per_id"], seed=cfg["seed"],
                          val_fraction=cfg["val_fraction"], force=cfg["force"])
        identities = info["config"]["n"]
        return {"identities": identities, "images": identities * cfg["per_id"], "seconds": info["seconds"],
                "artifacts": {"root": str(out)}}
    size = {} if cfg["imgsz"] is None else {"width": cfg["imgsz"], "height": cfg["imgsz"] * 3 // 4}
    info = synth_video(out, **_given(cfg, sequences="n"), frames=cfg["frames"], **size, seed=cfg["seed"],
                       images=cfg["images"], force=cfg["force"], camera_motion=cfg["camera_motion"])
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
    """(spec, scans, summary) for a data.yaml (detect or segment) or an ImageFolder directory."""
    from edgecnn.data import dataset_format, imagefolder, open_dataset, summary, yolo

    path = Path(data)
    if dataset_format(path) == "segment":
        from edgecnn.data.segment import scan_segment_split

        spec = open_dataset(path)
        scans = {s: scan_segment_split(spec, s, check=False) for s in spec.splits}
        return spec, scans, summary.summarize_segmentation(spec, scans)
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
    data = need(cfg, "data")
    out = Path(cfg["out"] or Path("calibration") / dataset_name(data))
    info = sample_calibration(data, out, **_given(cfg, n="n"), split=cfg["split"], seed=cfg["seed"])
    return {"images": info["n"], "strata": len(info["strata"]),
            "artifacts": {"calibration": str(out), "calib_json": str(out / "calib.json")}}


def run_crops(cfg: dict) -> dict:
    out = Path(cfg["out"] or "runs/data/crops")
    info = cut_identity_crops(need(cfg, "source"), out, val_fraction=cfg["val_fraction"],
                              **_given(cfg, min_visibility="min_visibility", step="step"),
                              max_per_id=cfg["max_per_id"], seed=cfg["seed"])
    return {"identities": info["identities"], "crops": info["crops"], "artifacts": {"root": str(out)}}


def run_mot(cfg: dict) -> dict:
    from edgecnn.config import ConfigError
    from edgecnn.data.mot_yolo import parse_range

    out = Path(cfg["out"] or "runs/data/mot")
    try:
        ranges = {s: parse_range(cfg[f"{s}_frames"], f"{s}_frames") for s in ("train", "val", "test")}
    except ValueError as err:
        raise ConfigError(f"edgecnn data mot: {err}") from None
    info = mot_to_yolo(need(cfg, "source"), out, [str(n) for n in cfg["names"]], **ranges,
                       **_given(cfg, min_visibility="min_visibility", step="step"))
    artifacts = {"root": str(out), "data_yaml": str(out / "data.yaml")}
    tests = sorted(p.parent.parent for p in (out / "test").glob("*/gt/gt.txt"))
    if tests:
        artifacts.update(test=str(out / "test"), test_video=str(tests[0] / f"{tests[0].name}.mp4"),
                         test_gt=str(tests[0] / "gt" / "gt.txt"))
    splits = info["splits"]
    return {"images": splits["train"]["images"] + splits["val"]["images"],
            "boxes": splits["train"]["boxes"] + splits["val"]["boxes"], "sequences": len(info["sequences"]),
            "artifacts": artifacts}
