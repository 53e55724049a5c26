"""Ultralytics' own TFLite files of a trained yolov8n, as they are, through `edgecnn val`, against an
independent decoding of each file (the interpreter's raw output, Ultralytics' LetterBox, NMS and
scale_boxes, as its docs and LiteRT backend do), both scored by edgecnn's metric.

    PYTHONPATH=. python benchmarks/ultralytics_tflite.py [--weights best.pt --data my.yaml]
        [--imgsz 320] [--calib-images 64] [--val-images N] [--no-ours]

Weights: `--weights` (an Ultralytics detection best.pt) with `--data`; else (`--weights` none: no
trained Ultralytics model can be downloaded here, and training one on this shared CPU takes hours) a
yolov8n from its YAML with spread statistics (as the tests build it) on coco128's real photographs
(`../shared/data`): its own float predictions on val2017 are the ground truth (so float mAP is
high and every loss is the file's), train2017 calibrates. Ultralytics 8.4.190 exports it
twice with `format="saved_model", quantize=8` (calibrated on `--calib-images` training images):
as it writes them (boxes in pixels) and with the box normalization of its Edge TPU route (and of
older Ultralytics' TFLite export). Each of the five files per route is scored by `edgecnn val` and
by the independent decoding, or named as refused with edgecnn's reason. Then (unless --no-ours)
`edgecnn export` re-quantizes the same .pt to full int8 (int8 I/O) and scores it next to their
files (`compare=`), as a user choosing a route would see it.
Writes runs/benchmarks/ultralytics_tflite.json. The machine is shared: no timings here.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import OUT
from tests.ultralytics_env import (
    NAMES,
    TFLITE_FILES,
    build,
    export_tflite_files,
    import_ultralytics,
    independent_score,
    write_predicted_labels,
)

from edgecnn.fileio import atomic_write_json, atomic_write_text

WORK = OUT / "ultralytics_tflite"
COCO128 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco128"
LABEL_CONF = 0.25


def pseudo_labelled_coco(coco128: Path, imgsz: int, boxes: int) -> tuple[Path, Path]:
    """(best.pt, data.yaml): a spread-statistics yolov8n saved as a checkpoint, coco128's images
    linked in (never copied), val2017 labelled with its own `boxes` best predictions per image (an
    untrained model finds hundreds of boxes above any threshold)."""
    from ultralytics import YOLO

    folder = (WORK / "coco128-pseudo").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "yolov8n.pt"
    build("yolov8n", folder).save(weights)  # Ultralytics' own checkpoint format (half weights)
    model = YOLO(str(weights))
    for split, source in (("train", "train2017"), ("val", "val2017")):
        images = folder / "images" / split
        images.mkdir(parents=True, exist_ok=True)
        found = sorted((coco128 / "images" / source).glob("*.jpg"))
        if not found:
            raise SystemExit(f"ultralytics_tflite: no coco128 images in {coco128 / 'images' / source} (--coco128)")
        for path in found:
            if not (images / path.name).exists():
                (images / path.name).symlink_to(path.resolve())
    write_predicted_labels(model, sorted((folder / "images" / "val").iterdir()), folder / "labels" / "val", imgsz, LABEL_CONF,
                           max_det=boxes)
    data = atomic_write_text(folder / "data.yaml", f"path: {folder}\ntrain: images/train\nval: images/val\nnames: {NAMES}\n")
    return weights, data


def calibration_yaml(data: Path, count: int) -> Path:
    """A data.yaml whose val split lists `count` training images: Ultralytics calibrates int8 on its
    data's val split, and the files are scored on the real val split."""
    from edgecnn.data.yolo import load_data_yaml
    from edgecnn.export.parity import image_paths

    spec = load_data_yaml(data)
    listing = atomic_write_text(WORK / "calib.txt", "".join(f"{p.resolve()}\n" for p in
                                                            image_paths(data, count, split="train")))
    return atomic_write_text(WORK / "calib.yaml", json.dumps({"path": str(spec.root.resolve()), "train": str(listing.resolve()),
                                                              "val": str(listing.resolve()),
                                                              "names": dict(enumerate(spec.names))}))


def score_files(files: dict[str, Path], normalized: bool, data: Path, val_images: int | None) -> dict:
    """{file suffix: edgecnn val's mAP50-95, the independent decoding's, or edgecnn's refusal}."""
    from edgecnn.commands import val

    rows = {}
    for name, path in files.items():
        reference = independent_score(path, normalized, data, val_images)["mAP50_95"]
        try:
            ours = val.run(val.KEYS.resolve({"model": str(path), "data": str(data), "max_images": val_images},
                                            "benchmark"))["mAP50_95"]
            rows[name] = {"edgecnn_val": ours, "independent": reference, "diff_points": 100 * (ours - reference)}
        except ValueError as err:
            rows[name] = {"refused": str(err), "independent": reference}
        print(f"{'normalized' if normalized else 'pixels':<11}{name:<20}" + (
            f"edgecnn val {100 * rows[name]['edgecnn_val']:6.2f}  independent {100 * reference:6.2f}"
            if "edgecnn_val" in rows[name] else f"refused (independent {100 * reference:6.2f})"))
    return rows


def ours_against_theirs(weights: Path, data: Path, theirs: list[Path], args) -> dict:
    """`edgecnn export` of the same .pt to full int8 (int8 I/O), their files scored next to it."""
    from edgecnn.commands import export

    cfg = export.KEYS.resolve({"model": str(weights), "format": "tflite", "precision": "int8", "io": "int8",
                               "data": str(data), "imgsz": args.imgsz, "calib_images": args.calib_images,
                               "val_images": args.val_images, "compare": [str(p) for p in theirs],
                               "max_map_drop": 100.0, "runs": 5, "out": str(WORK / "ours")}, "benchmark")
    return export.run(cfg)["compared"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="an Ultralytics detection best.pt (default: byo_ultralytics')")
    parser.add_argument("--data", default=None, help="its data.yaml (with --weights)")
    parser.add_argument("--coco128", type=Path, default=COCO128, help="coco128 (without --weights)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--val-images", type=int, default=None, help="score the first N val images only")
    parser.add_argument("--no-ours", action="store_true", help="skip edgecnn's own int8 export of the .pt")
    parser.add_argument("--label-boxes", type=int, default=10, help="ground-truth boxes per image (without --weights)")
    parser.add_argument("--routes", default="pixels,normalized", help="which export routes, comma-separated")
    parser.add_argument("--reuse", action="store_true", help="score the files a previous run left in each route's folder")
    args = parser.parse_args()
    ultralytics = import_ultralytics()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.weights:
        weights, data = Path(args.weights).resolve(), Path(args.data).resolve()  # Ultralytics works in other folders
    else:
        weights, data = pseudo_labelled_coco(args.coco128, args.imgsz, args.label_boxes)
    calib = calibration_yaml(data, args.calib_images).resolve()  # Ultralytics exports in another folder
    out_json = OUT / "ultralytics_tflite.json"
    results = json.loads(out_json.read_text()) if args.reuse and out_json.is_file() else {}
    results |= {"weights": str(weights), "data": str(data), "imgsz": args.imgsz, "calibration_images": args.calib_images,
               "ultralytics": ultralytics.__version__}
    files = {}
    for route in args.routes.split(","):
        folder = WORK / route
        if args.reuse:
            files[route] = {name: next(folder.glob(f"*_{name}.tflite")) for name in TFLITE_FILES}
        else:
            shutil.rmtree(folder, ignore_errors=True)
            exported = export_tflite_files(ultralytics.YOLO(str(weights)), WORK, calib, args.imgsz,
                                           normalized=route == "normalized")
            # Ultralytics writes beside the weights and clears that folder on each export: keep each route's files
            files[route] = {name: Path(shutil.copy(path, folder / path.name)) for name, path in exported.items()}
        results[route] = score_files(files[route], route == "normalized", data, args.val_images)
        atomic_write_json(OUT / "ultralytics_tflite.json", results)
    if not args.no_ours:
        theirs = [files[route][name] for route in files for name in TFLITE_FILES]
        results["edgecnn export int8 io=int8 vs theirs"] = ours_against_theirs(weights, data, theirs, args)
    atomic_write_json(OUT / "ultralytics_tflite.json", results)
    print(f"wrote {OUT / 'ultralytics_tflite.json'}")


if __name__ == "__main__":
    main()
