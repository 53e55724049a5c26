"""Our yolo-n against Ultralytics' yolov8n.yaml: same synthetic data, image size and epochs, no
pretrained weights; mAP50-95 and training wall time of both.

    python benchmarks/vs_ultralytics.py [--n 800] [--epochs 30] [--imgsz 320] [--device cpu]

Ultralytics goes into its own venv (runs/benchmarks/ultralytics-venv) that reuses this
environment's torch through a .pth file; if it cannot be installed the benchmark says so and
stops. Both models are scored by the same code: Ultralytics' best.pt predicts the validation images
(conf 0.001, IoU 0.6, 300 boxes) and `edgecnn.metrics.detection` scores them, as it scores ours.
Each trainer keeps its own default hyper-parameters. Writes runs/benchmarks/vs_ultralytics.{json,png}.
"""

from __future__ import annotations

import argparse
import logging
import json
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_detector import OUT, plot, synthetic_detect_data, train  # noqa: E402

from edgecnn.fileio import atomic_write_json  # noqa: E402

VENV = OUT / "ultralytics-venv"
ULTRALYTICS = "ultralytics==8.4.190"

RUNNER = r'''
import json, sys, time
args = json.loads(sys.argv[1])
from ultralytics import YOLO
model = YOLO("yolov8n.yaml")
start = time.perf_counter()
model.train(data=args["data"], imgsz=args["imgsz"], epochs=args["epochs"], batch=args["batch"], device=args["device"],
            workers=args["workers"], pretrained=False, amp=args["device"] != "cpu", plots=False, project=args["project"],
            name="run", exist_ok=True, seed=0, close_mosaic=args["close_mosaic"], verbose=False)
wall = time.perf_counter() - start
best = YOLO(f"{args['project']}/run/weights/best.pt")
preds = {}
for path in args["images"]:
    r = best.predict(path, imgsz=args["imgsz"], conf=0.001, iou=0.6, max_det=300, device=args["device"], verbose=False)[0]
    preds[path] = {"xyxy": r.boxes.xyxy.tolist(), "scores": r.boxes.conf.tolist(), "classes": r.boxes.cls.int().tolist()}
json.dump({"wall_s": wall, "preds": preds}, open(args["result"], "w"))
'''


def ultralytics_python() -> Path | None:
    """The venv's python with Ultralytics importable, installing it on first use; None if impossible."""
    python = VENV / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip()
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
        p = preds[str(image)]
        metrics.update(p["xyxy"], p["scores"], p["classes"], gt, labels[:, 0].astype(int))
    return metrics.compute()


def run_ultralytics(python: Path, data: Path, args) -> dict:
    from edgecnn.data.yolo import load_data_yaml

    spec = load_data_yaml(data)
    absolute = OUT / "vs_ultralytics" / "data.yaml"
    absolute.parent.mkdir(parents=True, exist_ok=True)
    absolute.write_text(json.dumps({"path": str(spec.root.resolve()), "train": "images/train", "val": "images/val",
                                    "names": dict(enumerate(spec.names))}))
    result = OUT / "vs_ultralytics" / "ultralytics_preds.json"
    job = {"data": str(absolute), "imgsz": args.imgsz, "epochs": args.epochs, "batch": args.batch,
           "device": "cpu" if args.device == "cpu" else 0, "workers": args.workers if args.workers is not None else 1,
           "project": str((OUT / "vs_ultralytics" / "ultralytics").resolve()), "close_mosaic": max(1, args.epochs // 5),
           "images": [str(p) for p in spec.images("val")], "result": str(result)}
    env = {"YOLO_OFFLINE": "true", "YOLO_CONFIG_DIR": str((VENV / "config").resolve()), "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    subprocess.run([str(python), "-c", RUNNER, json.dumps(job)], check=True, env=env)
    total = time.perf_counter() - start
    out = json.loads(result.read_text())
    csv = Path(job["project"]) / "run" / "results.csv"
    curve = []
    if csv.is_file():
        import csv as csvlib

        rows = list(csvlib.DictReader(csv.open()))
        curve = [(float(r["time"]), float(r["metrics/mAP50-95(B)"])) for r in rows if r.get("time")]
    return {"train_wall_s": round(out["wall_s"], 1), "total_wall_s": round(total, 1),
            "ours_metric": score(out["preds"], data), "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # per-epoch lines on stderr

    python = ultralytics_python()
    if python is None:
        atomic_write_json(OUT / "vs_ultralytics.json", {"skipped": f"{ULTRALYTICS} could not be installed"})
        return
    data = synthetic_detect_data(args.n, args.val, args.imgsz)
    ours, history, wall = train(data, OUT / "vs_ultralytics" / "edgecnn", model="yolo-n", imgsz=args.imgsz,
                                epochs=args.epochs, batch=args.batch, device=args.device, workers=args.workers,
                                close_mosaic=max(1, args.epochs // 5))
    theirs = run_ultralytics(python, data, args)
    m = theirs["ours_metric"]
    print(f"synthetic detection: {args.n} train / {args.val} val images, imgsz {args.imgsz}, {args.epochs} epochs, "
          f"device={args.device}, no pretrained weights")
    print(f"{'':<22} {'mAP50-95':>9} {'mAP50':>7} {'train wall (min)':>17}")
    print(f"{'edgecnn yolo-n':<22} {ours['mAP50_95']:>9.4f} {ours['mAP50']:>7.4f} {ours['train_time_s'] / 60:>17.1f}")
    print(f"{'ultralytics yolov8n':<22} {m['mAP50_95']:>9.4f} {m['mAP50']:>7.4f} {theirs['train_wall_s'] / 60:>17.1f}")
    record = {"args": vars(args), "ultralytics_version": ULTRALYTICS,
              "edgecnn": {"mAP50_95": ours["mAP50_95"], "mAP50": ours["mAP50"], "train_wall_s": ours["train_time_s"],
                          "wall_s": round(wall, 1)},
              "ultralytics": {"mAP50_95": m["mAP50_95"], "mAP50": m["mAP50"], "train_wall_s": theirs["train_wall_s"],
                              "their_own_curve": theirs["curve"]}}
    atomic_write_json(OUT / "vs_ultralytics.json", record)
    plot({"edgecnn yolo-n": [(r["time_s"], r["val/mAP50_95"]) for r in history],
          "ultralytics yolov8n (their val)": theirs["curve"]}, OUT / "vs_ultralytics.png",
         f"synthetic detection, imgsz {args.imgsz}, {args.epochs} epochs")


if __name__ == "__main__":
    main()
