"""Bring your own Ultralytics detector: an Ultralytics yolov8n / yolo11n trained a few epochs, then
taken through edgecnn from its .pt.

    PYTHONPATH=. python benchmarks/byo_ultralytics.py [--stage train|all] [--epochs 15]

Stage `train`: Ultralytics trains yolov8n and yolo11n from their YAMLs (no pretrained weights, nothing
downloads) on the synthetic shapes, on coco128 (`../shared/data/coco128`) and on CamVid's road
scenes turned into boxes (camvid_boxes.py; both skipped when absent); `--datasets` picks which.
Stage `compare` (per trained model, `--models`): (1) the float .pt scored by Ultralytics' own
`model.val()` (rect=False, conf 0.001, IoU 0.6) and by `edgecnn val` on the same file; (2) the same
weights to TFLite by both tools, calibrated on the same training images: ours with `edgecnn export`
straight from their .pt (fp32; full int8 with int8 I/O), theirs with vs_ultralytics.py's runner
(onnx2tf, `_integer_quant` / `_full_integer_quant`), each scored on the val split, drop against the
tool's own fp32 TFLite, raw `invoke()` latency with 2 threads.
Stage `compress` (per trained model): (c) `edgecnn prune` of the imported .pt (two prune → fine-tune
rounds), `edgecnn qat` of the pruned model, then its full-int8 TFLite (int8 I/O), each scored on the
val split against the imported float model.
Stage `int8ops` (per trained model): which layers int8 hurts, in NNCF's simulated int8 of the torch
model (per-channel weights, per-tensor activations, as our TFLite): the float .pt, every layer int8,
and int8 with YOLO11's attention (C2PSA's Attention modules) left in float, each scored on the val
split. It loses under a point where TFLite's int8 BATCH_MATMUL loses 8 (yolo11n): `export float_ops`.
Stage `finetune`: (b) `edgecnn train` of yolov8n on coco128 from the weights Ultralytics trained on the
synthetic shapes (a different domain: no COCO weights can be downloaded here), or from `--ft-weights`
(a yolov8n.pt you have, e.g. Ultralytics' COCO-pretrained one), against from scratch,
equal epochs and keys, scored on coco128's val2017 (128 images the training never sees).
Writes runs/benchmarks/byo_ultralytics.json. The machine is shared: timings are noisy.

The run the README quotes (15 epochs, 600 synthetic training images at 320, scored on the 150
held-out val images; 64 calibration images, 2 threads, mAP@.5:.95 in %):
- yolov8n: float mAP@.5:.95 17.17 by `edgecnn val`, 17.18 for Ultralytics' own predictions under our
  (pycocotools-exact) metric, 16.51 by their `val` (its own matching and interpolation); full int8
  with int8 I/O: ours 16.90 (-0.26 points), theirs 15.73 / 15.85 (`_integer_quant` -1.44,
  `_full_integer_quant` -1.32); `invoke()` 8.5 vs 7.6 / 8.9 ms.
- yolo11n: float 17.48 (their predictions 17.24 under our metric, their `val` 16.44); ours 17.17
  (-0.31) with attention's BATCH_MATMULs in float (`float_ops=auto`; all int8 9.43, -8.05), theirs
  8.49 / 8.28 (-8.99 / -9.20); 4.7 vs 5.0 / 5.0 ms.
- NNCF's simulated int8 of every layer loses only 0.86 (yolo11n) and 0.55 (yolov8n): the 8 points
  are TFLite's int8 BATCH_MATMUL. A second yolo11n (8 epochs, 1.09): all int8 0.09, `auto` 1.01.
- Prune → QAT of the imported yolov8n (2 rounds × 2 epochs to 55 % of the MACs, QAT 1 epoch): 17.17
  → pruned 13.40 → QAT 15.36 → int8 TFLite 15.55; ONNX latency 28.8 → 20.3 ms; with the prune
  fine-tune at lr0 0.0002 and no warmup, pruned 8.78, so the default keys stay. The yolo11n, same keys
  (57 % of the MACs): 17.48 → 9.96 → QAT 12.82 → int8 TFLite 12.77 (its attention in float).
- Fine-tuning on coco128 (an earlier run: 8 epochs from a yolov8n Ultralytics trained on the
  synthetic shapes, vs from scratch): 0.62 vs 0.00 at best, both noise, as no real-image weights can
  be downloaded here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import camvid_boxes
import vs_ultralytics
from common import OUT, run_command, synthetic_detect_data, train

from edgecnn.fileio import atomic_write_json, atomic_write_text

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


def their_val(weights: str, data: Path, imgsz: int) -> dict:
    """Ultralytics' own validation of its .pt, square letterbox as ours (rect=False)."""
    ultralytics_env(WORK / "ultralytics-config")
    from ultralytics import YOLO

    data_yaml = absolute_data_yaml(data, WORK / "val-data.yaml").resolve()
    m = YOLO(weights).val(data=str(data_yaml), imgsz=imgsz, batch=8, conf=0.001, iou=0.6, rect=False, plots=False,
                          workers=0, device="cpu", verbose=False, project=str((WORK / "ultralytics-val").resolve()))
    return {"mAP50_95": float(m.box.map), "mAP50": float(m.box.map50)}


def compare(name: str, record: dict, args) -> dict:
    """Float parity of the two validators, then both tools' TFLite exports of the same weights."""
    data, weights = Path(record["data"]), Path(record["weights"])
    work = WORK / name
    vs_ultralytics.WORK = work  # its calibration, export and runner pieces write under this model's folder
    their_weights = work / "ultralytics" / "run" / "weights" / "best.pt"  # where its runner looks
    their_weights.parent.mkdir(parents=True, exist_ok=True)
    their_weights.write_bytes(weights.read_bytes())
    ours_float = run_command("val", {"model": str(their_weights), "data": str(data), "imgsz": args.imgsz,
                                     "iou": 0.6, "threads": 2})
    theirs_float = their_val(str(their_weights), data, args.imgsz)
    calib = vs_ultralytics.calibration_set(data, args.calib_images, args.imgsz)
    ours = {"fp32": vs_ultralytics.export_ours(their_weights, calib, "fp32", args)[0],
            "int8 io=int8": vs_ultralytics.export_ours(their_weights, calib, "int8", args, io="int8")[0]}
    python = vs_ultralytics.ultralytics_python()
    theirs = vs_ultralytics.run_ultralytics(python, data, calib, args) if python else {"tflite": {}, "scores": {}}
    rows = vs_ultralytics.tflite_rows(ours, theirs, data, args, tools=(f"edgecnn {name}", f"ultralytics {name}"))
    return {"float": {"edgecnn val": {k: ours_float[k] for k in ("mAP50_95", "mAP50")}, "ultralytics val": theirs_float,
                      "their predict + our metric": theirs["scores"].get("best.pt", {}).get("mAP50_95")},
            "tflite": rows, "calibration_images": calib["images"]}


def compress(name: str, record: dict, args, label: str) -> dict:
    """(c) prune → QAT → full-int8 TFLite of the imported .pt; mAP50-95 of each step on the val split."""
    work = WORK / name / label.replace(" ", "_")
    common = {"data": record["data"], "imgsz": args.imgsz, "batch": args.batch, "workers": args.workers,
              "device": args.device, "max_map_drop": 100.0}  # report the drops, do not gate them
    pruned = run_command("prune", {"model": record["weights"], "target_macs": args.target_macs, "steps": 2,
                                   "ft_epochs": args.ft_epochs, "out": str(work / "prune"), **common,
                                   **prune_overrides(args)})
    quantized = run_command("qat", {"model": pruned["artifacts"]["model"], "epochs": args.qat_epochs,
                                    "out": str(work / "qat"), **common})
    vs_ultralytics.WORK = work
    calib = vs_ultralytics.calibration_set(Path(record["data"]), args.calib_images, args.imgsz)
    tflite, _ = vs_ultralytics.export_ours(Path(quantized["artifacts"]["model"]), calib, "int8", args, io="int8")
    int8 = vs_ultralytics.score_ours(tflite, Path(record["data"]))["mAP50_95"]
    return {"imported": pruned["mAP50_95_parent"], "pruned": pruned["mAP50_95"], "macs_kept": pruned["macs_kept"],
            "ptq": quantized["mAP50_95_ptq"], "qat": quantized["mAP50_95"], "int8_tflite": int8,
            "latency_onnx_ms": pruned.get("latency_onnx_ms"),
            "int8_invoke_ms_p50": vs_ultralytics.invoke_latency(tflite, args.runs)["latency_ms_p50"]}


def prune_overrides(args) -> dict:
    """The fine-tuning keys `--prune-lr0` / `--prune-warmup` set for `edgecnn prune` (none: its defaults)."""
    return {k: v for k, v in (("lr0", args.prune_lr0), ("warmup_epochs", args.prune_warmup)) if v is not None}


# label: (the block's class, the regex of its NNCF node names: NNCF 3.4 names nodes by module path
# within the block, e.g. `m/0/attn/matmul/1`, not by layer index)
FLOAT_CANDIDATES = {"attention (C2PSA)": ("Attention", ".*attn/.*")}


def int8_ops(record: dict, args) -> dict:
    """mAP50-95 of the float model, of NNCF PTQ of every layer, and of PTQ with one family in float."""
    from edgecnn.compress import qat as q
    from edgecnn.compress.measure import example_input
    from edgecnn.compress.workflow import calibration_files, score
    from edgecnn.models import load_checkpoint
    from edgecnn.train.keys import FINETUNE_KEYS

    cfg = FINETUNE_KEYS.resolve({"data": record["data"], "imgsz": args.imgsz, "batch": args.batch,
                                 "workers": args.workers}, "benchmark")
    model, meta = load_checkpoint(record["weights"])
    scores = {"float": score(model, cfg, meta)}
    q.fold_batchnorm(model, example_input(model, args.imgsz))
    calib = q.calibration_tensors(calibration_files(None, "detect", record["data"], args.calib_images), args.imgsz,
                                  meta["mean"], meta["std"])
    present = {type(m).__name__ for m in model.modules()}
    runs = {"all int8": None, **{f"{label} in float": [pattern] for label, (block, pattern) in FLOAT_CANDIDATES.items()
                                 if block in present}}
    for label, patterns in runs.items():
        scores[label] = score(q.quantize(model, calib, len(calib), patterns), cfg, meta)
        print(f"{label}: mAP50-95 {100 * scores[label]:.2f} (float {100 * scores['float']:.2f})")
    return scores


def finetune(record: dict, args) -> dict:
    """(b) yolov8n on coco128 from the imported weights vs from scratch, equal epochs and keys."""

    keys = {"model": "yolov8n", "epochs": args.ft_coco_epochs, "imgsz": args.imgsz, "batch": args.batch,
            "workers": args.workers, "device": args.device, "seed": 0, "plots": False}
    runs = {}
    imported = {"weights": record["weights"], "freeze": args.ft_freeze, "finetune_lr_scale": args.ft_lr_scale}
    for start, extra in (("imported", imported), ("scratch", {})):
        result, history, wall = train(COCO128, WORK / "finetune" / start, **keys, **extra)
        runs[start] = {"mAP50_95": result["mAP50_95"], "mAP50": result["mAP50"], "wall_s": round(wall, 1),
                       "history": [round(h["val/mAP50_95"], 5) for h in history if "val/mAP50_95" in h]}
        print(f"coco128, {start}: mAP50-95 {100 * result['mAP50_95']:.2f} after {args.ft_coco_epochs} epochs "
              f"({wall / 60:.1f} min)")
    return {"source": record["weights"], "epochs": args.ft_coco_epochs, "imported_keys": imported, **runs}


def print_compare(name: str, result: dict) -> None:
    f = result["float"]
    print(f"\n{name}: float .pt, mAP50-95 points: edgecnn val {100 * f['edgecnn val']['mAP50_95']:.2f}, "
          f"Ultralytics val {100 * f['ultralytics val']['mAP50_95']:.2f}")
    print(f"{'artifact':<44}{'mAP50-95':>9}{'drop':>7}{'p50 ms':>8}  inputs -> outputs")
    for row_name, r in result["tflite"].items():
        drop = "" if r["drop_points"] is None else f"{r['drop_points']:+.2f}"
        print(f"{row_name:<44}{100 * r['mAP50_95']:>9.2f}{drop:>7}{r['latency_ms_p50']:>8.2f}  "
              f"{', '.join(r['inputs'])} -> {', '.join(r['outputs'])}")


def merge_results(path: Path, name: str, results: dict) -> None:
    """Add `results` under `name` to the JSON as it is now: stages of other models may run meanwhile."""
    everything = json.loads(path.read_text()) if path.is_file() else {}
    everything.setdefault(name, {}).update(results)
    atomic_write_json(path, everything)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="all", choices=("train", "compare", "compress", "int8ops", "finetune", "all"))
    parser.add_argument("--datasets", default="synth,coco128", help="comma-separated: synth, coco128, camvid")
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated Ultralytics models to train")
    parser.add_argument("--models", default=None, help="comma-separated trained names to compare (default: all)")
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--runs", type=int, default=30, help="timed invoke() runs per .tflite")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--target-macs", type=float, default=0.6, help="compress: fraction of the MACs to keep")
    parser.add_argument("--ft-epochs", type=int, default=2, help="compress: fine-tuning epochs per prune round")
    parser.add_argument("--prune-lr0", type=float, default=None, help="compress: lr0= of the prune fine-tuning")
    parser.add_argument("--prune-warmup", type=float, default=None, help="compress: warmup_epochs= of it")
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--ft-coco-epochs", type=int, default=8, help="finetune: epochs of both coco128 runs")
    parser.add_argument("--ft-weights", default=None,
                        help="finetune: a yolov8n .pt to start from (e.g. COCO-pretrained; default: the synthetic one)")
    parser.add_argument("--ft-freeze", default=None, help="finetune: freeze= of the run from imported weights")
    parser.add_argument("--ft-lr-scale", type=float, default=1.0, help="finetune: finetune_lr_scale= of that run")
    parser.add_argument("--n", type=int, default=600, help="synthetic training images")
    parser.add_argument("--val", type=int, default=150, help="synthetic validation images")
    args = parser.parse_args()
    args.reuse_training = True  # what vs_ultralytics' runner reads: the weights exist, do not train
    wanted = args.datasets.split(",")
    datasets = {"synth": synthetic_detect_data(args.n, args.val, args.imgsz)} if "synth" in wanted else {}
    if COCO128.is_file() and "coco128" in wanted:
        datasets["coco128"] = COCO128
    if camvid_boxes.CAMVID.is_dir() and "camvid" in wanted:
        boxes = OUT / "data" / "camvid-boxes"
        camvid_boxes.convert(camvid_boxes.CAMVID, boxes)
        datasets["camvid"] = boxes / "data.yaml"
    trained_json = WORK / "trained.json"
    trained = json.loads(trained_json.read_text()) if trained_json.is_file() else {}
    if args.stage in ("train", "all"):
        for dataset, data in datasets.items():
            for arch in args.archs.split(","):
                name = f"{arch}-{dataset}"
                if name not in trained:
                    trained[name] = {"data": str(data), "epochs": args.epochs, "imgsz": args.imgsz,
                                     **train_ultralytics(arch, data, name, args.epochs, args.imgsz, args.batch)}
                    atomic_write_json(trained_json, trained)
    if args.stage == "train":
        return
    out_json = OUT / "byo_ultralytics.json"
    for name in (args.models.split(",") if args.models else trained):
        results = {"trained": trained[name]}
        if args.stage in ("compare", "all"):
            results.update(compare(name, trained[name], args))
            print_compare(name, results)
        if args.stage in ("int8ops", "all"):
            results["int8ops"] = int8_ops(trained[name], args)
        if args.stage in ("compress", "all"):
            label = " ".join(["compress", *(f"{k}={v}" for k, v in prune_overrides(args).items())])
            results[label] = compress(name, trained[name], args, label)
            print(f"{name}, {label}: {json.dumps(results[label])}")
        merge_results(out_json, name, results)
    source = {"weights": args.ft_weights} if args.ft_weights else trained.get("yolov8n-synth")
    if args.stage in ("finetune", "all") and COCO128.is_file() and source:
        merge_results(out_json, "finetune_coco128", finetune(source, args))
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
