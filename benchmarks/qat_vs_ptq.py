"""Int8 QAT against post-training int8 (PTQ) of the same float model, and the float model itself.

    python benchmarks/qat_vs_ptq.py --parent best.pt --data data.yaml [--epochs 3] [--calib DIR]
        [--subset-size 300] [--lr-scale 0.1] [--tflite]

PTQ is NNCF's calibration alone (BN folded, symmetric per-channel weights, per-tensor
activations); QAT starts from that same calibration and fine-tunes `--epochs` at lr0 ×
`--lr-scale`. Each is scored in torch (fake-quantized) and as the exported Q/DQ ONNX in ONNX
Runtime through the device's pre/post-processing (`edgecnn val`); `--tflite` adds the int8
TFLite of each (onnx2tf re-calibrates inside the Q/DQ ranges, see edgecnn.export.tflite).
Target: QAT within 0.5 point of its float parent and better than PTQ.
Writes runs/benchmarks/qat_vs_ptq.{json,png}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import OUT

from edgecnn.fileio import atomic_write_json

TARGET_DROP = 0.5


def device_metric(path: Path, data: str, metric: str) -> float:
    """The metric of an exported artifact through the device's backend and processing."""
    from edgecnn.evaluate import validate
    from edgecnn.runtime.backends import load_backend

    return float(validate(load_backend(path, threads=1), data)[metric])


def tflite_int8(onnx_path: Path, data: str, calib: str | None, count: int) -> Path:
    import numpy as np

    from edgecnn.compress.workflow import calibration_files
    from edgecnn.data.loaders import letterboxed_tensor
    from edgecnn.export.tflite import export_tflite
    from edgecnn.runtime.backends import load_backend

    backend = load_backend(onnx_path)
    files = calibration_files(calib, backend.meta["task"], data, count)
    images = np.stack([letterboxed_tensor(f, backend.input_size)[0].permute(1, 2, 0).numpy() for f in files])
    return export_tflite(onnx_path, onnx_path.with_suffix(".int8.tflite"), images, precision="int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", required=True, help="float checkpoint (e.g. runs/benchmarks/prune_table/parent/best.pt)")
    parser.add_argument("--data", required=True, help="data.yaml or ImageFolder root it was trained on")
    parser.add_argument("--calib", help="calibration images (default: training images)")
    parser.add_argument("--epochs", type=int, default=3, help="QAT epochs")
    parser.add_argument("--lr-scale", type=float, default=0.1)
    parser.add_argument("--subset-size", type=int, default=300)
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--tflite", action="store_true", help="also score the int8 TFLite of PTQ and QAT")
    args = parser.parse_args()

    from edgecnn.compress.workflow import qat_checkpoint
    from edgecnn.export.onnx import export_onnx
    from edgecnn.models import load_checkpoint
    from edgecnn.train.keys import FITNESS, TRAIN_KEYS

    train_cfg = {**TRAIN_KEYS.defaults(), "data": args.data, "imgsz": args.imgsz, "batch": args.batch,
                 "device": args.device, "workers": args.workers, "plots": False, "close_mosaic": 1}
    runs = {}
    for name, epochs in (("ptq", 0), ("qat", args.epochs)):
        runs[name] = qat_checkpoint(args.parent, train_cfg, OUT / "qat_vs_ptq" / name, calib=args.calib, epochs=epochs,
                                    lr_scale=args.lr_scale, subset_size=args.subset_size, max_drop=float("inf"))
    model, meta = load_checkpoint(args.parent)
    metric = FITNESS[model.task]
    float_onnx = export_onnx(model, meta, OUT / "qat_vs_ptq" / "float.onnx", imgsz=args.imgsz or meta["imgsz"])
    rows = {"float": {"torch": runs["qat"][f"{metric}_float"], "onnx": device_metric(float_onnx, args.data, metric)},
            "ptq": {"torch": runs["ptq"][metric]}, "qat": {"torch": runs["qat"][metric]}}
    for name in ("ptq", "qat"):
        onnx_path = Path(runs[name]["artifacts"]["onnx"])
        rows[name]["onnx"] = device_metric(onnx_path, args.data, metric)
        if args.tflite:
            rows[name]["tflite"] = device_metric(tflite_int8(onnx_path, args.data, args.calib, 64), args.data, metric)

    print(f"\n{metric} (points) of {args.parent}: torch fake-quant, ONNX Runtime with Q/DQ"
          + (", TFLite int8" if args.tflite else ""))
    for name, row in rows.items():
        print(f"  {name:>5}: " + "  ".join(f"{k} {v * 100:6.2f}" for k, v in row.items()))
    qat, ptq, flt = rows["qat"]["onnx"], rows["ptq"]["onnx"], rows["float"]["onnx"]
    print(f"QAT within {TARGET_DROP} point of float: {'yes' if (flt - qat) * 100 <= TARGET_DROP else 'NO'} "
          f"({(flt - qat) * 100:.2f}); QAT better than PTQ: {'yes' if qat > ptq else 'NO'} ({(qat - ptq) * 100:+.2f})")
    atomic_write_json(OUT / "qat_vs_ptq.json", {"args": vars(args), "metric": metric, "rows": rows})
    plot(rows, metric, OUT / "qat_vs_ptq.png")


def plot(rows: dict, metric: str, path: Path) -> None:
    from edgecnn.plots import figure, save_figure

    fig, axes = figure(figsize=(6, 4), squeeze=False)
    ax = axes[0][0]
    kinds = list(dict.fromkeys(k for row in rows.values() for k in row))
    width = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        ax.bar([i + j * width for i in range(len(rows))], [rows[n].get(kind, 0.0) for n in rows], width, label=kind)
    ax.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(rows))], list(rows))
    ax.set(ylabel=metric, title="float vs post-training int8 vs QAT int8")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
