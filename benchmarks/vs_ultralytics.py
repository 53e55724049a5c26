"""Our yolo-n against Ultralytics' yolov8n.yaml: same synthetic data, image size and epochs, no
pretrained weights; mAP50-95 and training wall time of both, then both exported to fp32 and int8
TFLite: each artifact's mAP50-95, the int8 drop and the interpreter's latency, in the same run.

    PYTHONPATH=. python benchmarks/vs_ultralytics.py [--n 800] [--epochs 30] [--imgsz 320]
        [--device cpu] [--calib-images 64] [--runs 50]

Ultralytics goes into its own venv (runs/benchmarks/ultralytics-venv) that reuses this
environment's packages (torch, onnx2tf, tensorflow, ai-edge-litert) through a .pth file; if it
cannot be installed the benchmark says so and stops. Its runner has auto-install and downloads off
(YOLO_AUTOINSTALL=false, YOLO_OFFLINE=true) and works in a folder holding onnx2tf's calibration sample,
written from our calibration images as `edgecnn export` writes it.

Training: each trainer keeps its own default hyper-parameters.
Export: ours with `edgecnn export` (fp32, full-int8 with float I/O); theirs with
`export(format="saved_model")`, its onnx2tf path, the one that writes .tflite files (its
`format="tflite"` now means litert-torch, which is not installed), fp32 and then `quantize=8`,
which writes three int8 models: `_int8` (dynamic range: int8 weights, float activations),
`_integer_quant` (full int8, float I/O: the counterpart of ours) and `_full_integer_quant`
(int8 I/O). Both tools calibrate on the same `--calib-images` training images. Their exports get the
box normalization 8.4.190 gives format=edgetpu only, which its own LiteRT backend assumes (as exported,
its fp32 .tflite scores 0 mAP through its own predict and int8 drops every detection).
`--reuse-training` keeps both trained models and the last run's training figures and redoes the rest.
Scoring: one code for both. Ours through the device's backend (`edgecnn.evaluate.validate`);
theirs by their own predict (best.pt and each .tflite; conf 0.001, IoU 0.6, 300 boxes) scored by
`edgecnn.metrics.detection`. Latency: raw `interpreter.invoke()` of each .tflite in the same LiteRT
interpreter (2 threads, XNNPACK as it comes), median and p90 after warm-up.
Writes runs/benchmarks/vs_ultralytics.{json,png}. The machine is shared: timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

from common import OUT, draw_curves, run_command, synthetic_detect_data, train

from edgecnn.fileio import atomic_write_json, atomic_write_text

VENV = OUT / "ultralytics-venv"
ULTRALYTICS = "ultralytics==8.4.190"
WORK = OUT / "vs_ultralytics"
# Ultralytics' TFLite files from one `export(format="saved_model")`: our row name → its file suffix
THEIR_TFLITE = {"fp32": {"fp32": "float32"},
                "int8": {"int8 _int8 (dynamic range)": "int8", "int8 _integer_quant": "integer_quant",
                         "int8 _full_integer_quant": "full_integer_quant"}}

RUNNER = r'''
import json, pathlib, shutil, sys, time
args = json.loads(sys.argv[1])
_write_text = pathlib.Path.write_text


def _site_packages_read_only(self, *a, **k):
    # Ultralytics' export rewrites onnx2tf's TopK.py in site-packages; this environment is shared, so
    # the write fails as on a read-only install and the export goes on unpatched (yolov8n has no TopK)
    if "site-packages" in self.parts:
        raise OSError(f"{self}: site-packages is read-only for this benchmark")
    return _write_text(self, *a, **k)


pathlib.Path.write_text = _site_packages_read_only
from ultralytics import YOLO


def predict(weights):
    model, preds = YOLO(weights, task="detect"), {}
    for path in args["images"]:
        r = model.predict(path, imgsz=args["imgsz"], conf=0.001, iou=0.6, max_det=300, device=args["device"], verbose=False)[0]
        preds[path] = {"xyxy": r.boxes.xyxy.tolist(), "scores": r.boxes.conf.tolist(), "classes": r.boxes.cls.int().tolist()}
    return preds


result = {"wall_s": None, "preds": {}, "tflite": {}, "export_s": {}}
if args["train"]:
    start = time.perf_counter()
    YOLO("yolov8n.yaml").train(data=args["data"], imgsz=args["imgsz"], epochs=args["epochs"], batch=args["batch"],
                               device=args["device"], workers=args["workers"], pretrained=False,
                               amp=args["device"] != "cpu", plots=False, project=args["project"], name="run",
                               exist_ok=True, seed=0, close_mosaic=args["close_mosaic"], verbose=False)
    result["wall_s"] = time.perf_counter() - start
best = f"{args['project']}/run/weights/best.pt"
result["preds"]["best.pt"] = predict(best)
# 8.4.190 normalizes the boxes of a TF export (tf_wrapper) for format=edgetpu only, yet its LiteRT backend
# scales the boxes of every onnx2tf .tflite by the image size: as exported, even its fp32 .tflite scores 0 mAP,
# and int8 puts pixel boxes and class scores in one tensor. The exports get the normalization edgetpu gets.
from ultralytics.nn.modules import Detect
from ultralytics.utils.export.tensorflow import _tf_decode_boxes
Detect._get_decode_boxes = _tf_decode_boxes
out = pathlib.Path(args["tflite_dir"])
out.mkdir(parents=True, exist_ok=True)
for precision, files in args["tflite"].items():
    start = time.perf_counter()
    quantize = {"quantize": 8} if precision == "int8" else {}
    folder = pathlib.Path(YOLO(best).export(format="saved_model", imgsz=args["imgsz"], data=args["calib_data"],
                                            device="cpu", **quantize))
    result["export_s"][precision] = time.perf_counter() - start
    for name, suffix in files.items():
        path = out / f"yolov8n_{suffix}.tflite"
        shutil.copyfile(folder / f"best_{suffix}.tflite", path)
        result["tflite"][name] = str(path)
        result["preds"][name] = predict(str(path))
json.dump(result, open(args["result"], "w"))
'''


def ultralytics_python() -> Path | None:
    """The venv's python with Ultralytics importable, installing it on first use; None if impossible."""
    python = VENV.absolute() / "bin" / "python"  # absolute: the runner works in another folder
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        # every run: the venv reuses the packages of the python running this benchmark
        Path(site, "edgecnn-host.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        if subprocess.run([str(python), "-c", "import ultralytics"], capture_output=True).returncode:
            subprocess.run([str(python), "-m", "pip", "install", "-q", ULTRALYTICS], check=True)
        subprocess.run([str(python), "-c", "import ultralytics"], check=True, capture_output=True)
        return python
    except (subprocess.CalledProcessError, OSError) as err:
        print(f"vs_ultralytics: skipped: could not install {ULTRALYTICS} into {VENV}: {err}", file=sys.stderr)
        return None


def score(preds: dict, data: Path) -> dict:
    """Our COCO mAP of predictions given in original-image pixels."""
    import cv2

    from edgecnn.data.yolo import load_data_yaml, scan_split
    from edgecnn.metrics.detection import DetectionMetrics

    spec = load_data_yaml(data)
    scan = scan_split(spec, "val")
    metrics = DetectionMetrics(spec.nc, spec.names)
    for image, labels in scan:
        h, w = cv2.imread(str(image)).shape[:2]
        cx, cy, bw, bh = labels[:, 1] * w, labels[:, 2] * h, labels[:, 3] * w, labels[:, 4] * h
        gt = [[x - a / 2, y - b / 2, x + a / 2, y + b / 2] for x, y, a, b in zip(cx, cy, bw, bh)]
        p = preds[str(Path(image).resolve())]
        metrics.update(p["xyxy"], p["scores"], p["classes"], gt, labels[:, 0].astype(int))
    return metrics.compute()


def calibration_set(data: Path, count: int, imgsz: int) -> dict:
    """The training images both tools calibrate on: our `calib=` folder, and for Ultralytics a data.yaml
    whose val split lists the same images plus a working folder holding onnx2tf's sample file."""
    from edgecnn.data.yolo import load_data_yaml
    from edgecnn.export.parity import image_paths, letterboxed_images
    from edgecnn.export.tflite import ONNX2TF_SAMPLE, calibration_array, sample_for_onnx2tf

    spec = load_data_yaml(data)
    folder = spec.sources("train")[0]
    paths = image_paths(folder, count)  # the picks `edgecnn export calib=<folder>` makes
    listing = atomic_write_text(WORK / "calib.txt", "".join(f"{p.resolve()}\n" for p in paths))
    yaml = WORK / "calib.yaml"
    atomic_write_text(yaml, json.dumps({"path": str(spec.root), "train": str(folder), "val": str(listing.resolve()),
                                        "names": dict(enumerate(spec.names))}))
    cwd = WORK / "ultralytics-cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    images = calibration_array(letterboxed_images(paths, (imgsz, imgsz)), (imgsz, imgsz), folder)
    np.save(cwd / ONNX2TF_SAMPLE, sample_for_onnx2tf(images))
    return {"folder": folder, "images": len(paths), "yaml": yaml.resolve(), "cwd": cwd.resolve()}


def export_ours(checkpoint: Path, calib: dict, precision: str, args, io: str = "float") -> tuple[Path, float]:
    """`edgecnn export format=tflite` of our checkpoint; (the .tflite, seconds it took)."""
    keys = {"model": str(checkpoint), "format": "tflite", "precision": precision, "io": io, "calib": str(calib["folder"]),
            "calib_images": calib["images"], "out": str(WORK / "edgecnn-export"), "threads": 2, "runs": 3}
    start = time.perf_counter()
    result = run_command("export", keys)
    return Path(result["artifacts"]["tflite"]), time.perf_counter() - start


def score_ours(path: Path, data: Path) -> dict:
    from edgecnn.evaluate import validate
    from edgecnn.runtime.backends import load_backend

    return validate(load_backend(path, threads=2), str(data))


def invoke_latency(path: Path, runs: int, threads: int = 2, warmup: int = 5) -> dict:
    """Milliseconds per raw `invoke()` in LiteRT's interpreter, and the model's I/O tensors."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interpreter.get_input_details():
        dtype = np.dtype(d["dtype"])
        if dtype.kind in "iu":
            x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, d["shape"], dtype=dtype, endpoint=True)
        else:
            x = rng.random(d["shape"]).astype(dtype)
        interpreter.set_tensor(d["index"], x)
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - start
    tensors = interpreter.get_tensor_details()
    return {"latency_ms_p50": float(np.median(times) * 1e3), "latency_ms_p90": float(np.percentile(times, 90) * 1e3),
            "size_mb": path.stat().st_size / 2**20,
            "inputs": [_describe(d) for d in interpreter.get_input_details()],
            "outputs": [_describe(d) for d in interpreter.get_output_details()],
            "int8_tensors": f"{sum(np.dtype(t['dtype']) == np.int8 for t in tensors)}/{len(tensors)}"}


def _describe(detail: dict) -> str:
    return f"{np.dtype(detail['dtype']).name}{list(detail['shape'])}"


def run_ultralytics(python: Path, data: Path, calib: dict, args) -> dict:
    from edgecnn.data.yolo import load_data_yaml

    spec = load_data_yaml(data)
    absolute = WORK / "data.yaml"
    atomic_write_text(absolute, json.dumps({"path": str(spec.root), "train": "images/train", "val": "images/val",
                                            "names": dict(enumerate(spec.names))}))
    result = WORK / "ultralytics_preds.json"
    job = {"data": str(absolute.resolve()), "imgsz": args.imgsz, "epochs": args.epochs, "batch": args.batch,
           "device": "cpu" if args.device == "cpu" else 0, "workers": args.workers if args.workers is not None else 1,
           "project": str((WORK / "ultralytics").resolve()), "close_mosaic": max(1, args.epochs // 5),
           "images": [str(p.resolve()) for p in spec.images("val")], "result": str(result.resolve()),
           "calib_data": str(calib["yaml"]), "train": not args.reuse_training, "tflite": THEIR_TFLITE,
           "tflite_dir": str((WORK / "ultralytics-export").resolve())}
    env = {"YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false", "YOLO_CONFIG_DIR": str((VENV / "config").resolve()),
           "PATH": "/usr/bin:/bin"}
    subprocess.run([str(python), "-c", RUNNER, json.dumps(job)], check=True, env=env, cwd=calib["cwd"])
    out = json.loads(result.read_text())
    csv = Path(job["project"]) / "run" / "results.csv"
    curve = []
    if csv.is_file():
        import csv as csvlib

        rows = list(csvlib.DictReader(csv.open()))
        curve = [(float(r["time"]), float(r["metrics/mAP50-95(B)"])) for r in rows if r.get("time")]
    return {"train_wall_s": out["wall_s"] and round(out["wall_s"], 1), "export_s": out["export_s"], "tflite": out["tflite"],
            "scores": {name: score(preds, data) for name, preds in out["preds"].items()}, "curve": curve}


def tflite_rows(ours: dict, theirs: dict, data: Path, args, tools=("edgecnn yolo-n", "ultralytics yolov8n")) -> dict:
    """Every TFLite artifact: mAP50-95, mAP50, the drop against its tool's fp32 TFLite, latency, I/O."""
    rows = {}
    for tool, paths in zip(tools, (ours, theirs["tflite"])):
        for name, path in paths.items():
            m = score_ours(Path(path), data) if tool == tools[0] else theirs["scores"][name]
            rows[f"{tool} {name}"] = {"tool": tool, "artifact": name, "path": str(path),
                                      "mAP50_95": float(m["mAP50_95"]), "mAP50": float(m["mAP50"]),
                                      **invoke_latency(Path(path), args.runs)}
    for row in rows.values():
        fp32 = rows[f"{row['tool']} fp32"]["mAP50_95"]
        row["drop_points"] = None if row["artifact"] == "fp32" else 100 * (fp32 - row["mAP50_95"])
    return rows


def print_tables(args, ours: dict, theirs: dict, rows: dict, calib: dict) -> None:
    m = theirs["scores"]["best.pt"]
    print(f"\nsynthetic detection: {args.n} train / {args.val} val images, imgsz {args.imgsz}, {args.epochs} epochs, "
          f"batch {args.batch}, device={args.device}, no pretrained weights")
    print(f"{'':<22} {'mAP50-95':>9} {'mAP50':>7} {'train wall (min)':>17}")
    print(f"{'edgecnn yolo-n':<22} {ours['mAP50_95']:>9.4f} {ours['mAP50']:>7.4f} {ours['train_time_s'] / 60:>17.1f}")
    print(f"{'ultralytics yolov8n':<22} {m['mAP50_95']:>9.4f} {m['mAP50']:>7.4f} {theirs['train_wall_s'] / 60:>17.1f}")
    print(f"\nTFLite, {calib['images']} calibration images (training set) for both; mAP in points; "
          f"raw invoke() latency, LiteRT, 2 threads, {args.runs} runs")
    print(f"{'artifact':<50}{'mAP50-95':>9}{'drop':>7}{'p50 ms':>8}{'p90 ms':>8}{'MB':>6}  int8 tensors  inputs -> outputs")
    for name, r in rows.items():
        drop = "" if r["drop_points"] is None else f"{r['drop_points']:+.2f}"
        print(f"{name:<50}{100 * r['mAP50_95']:>9.2f}{drop:>7}{r['latency_ms_p50']:>8.2f}{r['latency_ms_p90']:>8.2f}"
              f"{r['size_mb']:>6.2f}  {r['int8_tensors']:>12}  {', '.join(r['inputs'])} -> {', '.join(r['outputs'])}")


def plot(history: list[dict], theirs: dict, rows: dict, path: Path, args) -> None:
    from edgecnn.plots import figure, save_figure

    fig, (curves, bars) = figure(1, 2, figsize=(13, 4.5))
    draw_curves(curves, {"edgecnn yolo-n": [(r["time_s"], r["val/mAP50_95"]) for r in history],
                         "ultralytics yolov8n (their val)": theirs["curve"]},
                f"synthetic detection, imgsz {args.imgsz}, {args.epochs} epochs")
    names = list(rows)
    bars.barh(names, [100 * rows[n]["mAP50_95"] for n in names], color=["C0" if "edgecnn" in n else "C1" for n in names])
    for i, n in enumerate(names):
        bars.text(0, i, f" p50 {rows[n]['latency_ms_p50']:.1f} ms", va="center", fontsize=8)
    bars.invert_yaxis()
    bars.set(xlabel="mAP50-95 (points, val)", title="TFLite fp32 / int8 (latency: raw invoke, 2 threads)")
    bars.grid(alpha=0.3, axis="x")
    save_figure(fig, path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--calib-images", type=int, default=64, help="int8 calibration images, both tools")
    parser.add_argument("--runs", type=int, default=50, help="timed invoke() runs per .tflite")
    parser.add_argument("--reuse-training", action="store_true",
                        help="keep both trained models and the training figures of the last run; redo export and scoring")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # per-epoch lines on stderr

    python = ultralytics_python()
    if python is None:
        atomic_write_json(OUT / "vs_ultralytics.json", {"skipped": f"{ULTRALYTICS} could not be installed"})
        return
    data = synthetic_detect_data(args.n, args.val, args.imgsz)
    if args.reuse_training:
        previous = json.loads((OUT / "vs_ultralytics.json").read_text())
        results = json.loads((WORK / "edgecnn" / "results.json").read_text())
        ours, history, wall = results["summary"], results["history"], previous["edgecnn"]["wall_s"]
    else:
        if WORK.exists():  # artifacts of an earlier run must not stand in for this one's
            shutil.rmtree(WORK)
        ours, history, wall = train(data, WORK / "edgecnn", model="yolo-n", imgsz=args.imgsz, epochs=args.epochs,
                                    batch=args.batch, device=args.device, workers=args.workers,
                                    close_mosaic=max(1, args.epochs // 5))
    calib = calibration_set(data, args.calib_images, args.imgsz)
    our_tflite, our_export_s = {}, {}
    for precision in ("fp32", "int8"):
        our_tflite[precision], our_export_s[precision] = export_ours(WORK / "edgecnn" / "best.pt", calib, precision, args)
    theirs = run_ultralytics(python, data, calib, args)
    if args.reuse_training:
        theirs["train_wall_s"] = previous["ultralytics"]["train_wall_s"]
    rows = tflite_rows(our_tflite, theirs, data, args)
    print_tables(args, ours, theirs, rows, calib)
    m = theirs["scores"]["best.pt"]
    record = {"args": vars(args), "ultralytics_version": ULTRALYTICS, "calibration_images": calib["images"],
              "ultralytics_export": "format=saved_model (onnx2tf) with the box normalization of its edgetpu export",
              "edgecnn": {"mAP50_95": ours["mAP50_95"], "mAP50": ours["mAP50"], "train_wall_s": ours["train_time_s"],
                          "wall_s": round(wall, 1), "export_s": our_export_s},
              "ultralytics": {"mAP50_95": m["mAP50_95"], "mAP50": m["mAP50"], "train_wall_s": theirs["train_wall_s"],
                              "export_s": theirs["export_s"], "their_own_curve": theirs["curve"]},
              "tflite": rows}
    atomic_write_json(OUT / "vs_ultralytics.json", record)
    plot(history, theirs, rows, OUT / "vs_ultralytics.png", args)
    print(f"wrote {OUT / 'vs_ultralytics.json'} and {OUT / 'vs_ultralytics.png'}")


if __name__ == "__main__":
    main()
