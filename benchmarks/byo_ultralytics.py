"""Bring your own Ultralytics detector: an Ultralytics yolov8n / yolo11n trained a few epochs, then
taken through edgecnn from its .pt.

    PYTHONPATH=.:benchmarks python benchmarks/byo_ultralytics.py [--stage train|all] [--epochs 12]

Stage `train`: Ultralytics trains yolov8n and yolo11n from their YAMLs (no pretrained weights, nothing
downloads) on the synthetic shapes and on coco128 (`../shared/data/coco128`, skipped when absent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_detector import OUT, synthetic_detect_data  # noqa: E402

from edgecnn.fileio import atomic_write_json, atomic_write_text  # noqa: E402

WORK = OUT / "byo_ultralytics"
COCO128 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco128" / "data.yaml"
ARCHS = ("yolov8n", "yolo11n")


def ultralytics_env(config_dir: Path) -> None:
    """Ultralytics offline: no downloads, no pip installs, settings in our own folder."""
    os.environ.update(YOLO_OFFLINE="true", YOLO_AUTOINSTALL="false", YOLO_CONFIG_DIR=str(config_dir.resolve()))


def absolute_data_yaml(data: Path, out: Path) -> Path:
    """The data.yaml with an absolute root, as Ultralytics resolves relative ones against its own folder."""
    from edgecnn.data.yolo import load_data_yaml

    spec = load_data_yaml(data)
    splits = {split: str(spec.sources(split)[0].resolve()) for split in ("train", "val")}
    return atomic_write_text(out, json.dumps({"path": str(spec.root.resolve()), **splits,
                                              "names": dict(enumerate(spec.names))}))


def train_ultralytics(arch: str, data: Path, name: str, epochs: int, imgsz: int, batch: int) -> dict:
    """Ultralytics' own training of `arch` from its YAML; returns best.pt and its own val figures."""
    ultralytics_env(WORK / "ultralytics-config")
    from ultralytics import YOLO

    project = (WORK / "ultralytics").resolve()
    start = time.perf_counter()
    YOLO(f"{arch}.yaml").train(data=str(absolute_data_yaml(data, WORK / f"{name}.yaml").resolve()), imgsz=imgsz,
                               epochs=epochs, batch=batch, device="cpu", workers=1, pretrained=False, amp=False,
                               plots=False, project=str(project), name=name, exist_ok=True, seed=0,
                               close_mosaic=max(1, epochs // 5), verbose=False)
    return {"weights": str(project / name / "weights" / "best.pt"), "train_wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="all", choices=("train", "all"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--n", type=int, default=800, help="synthetic training images")
    parser.add_argument("--val", type=int, default=200, help="synthetic validation images")
    args = parser.parse_args()
    datasets = {"synth": synthetic_detect_data(args.n, args.val, args.imgsz)}
    if COCO128.is_file():
        datasets["coco128"] = COCO128
    trained_json = WORK / "trained.json"
    trained = json.loads(trained_json.read_text()) if trained_json.is_file() else {}
    for dataset, data in datasets.items():
        for arch in ARCHS:
            name = f"{arch}-{dataset}"
            if name not in trained:
                trained[name] = {"data": str(data), "epochs": args.epochs, "imgsz": args.imgsz,
                                 **train_ultralytics(arch, data, name, args.epochs, args.imgsz, args.batch)}
                atomic_write_json(trained_json, trained)
    if args.stage == "train":
        return


if __name__ == "__main__":
    main()
