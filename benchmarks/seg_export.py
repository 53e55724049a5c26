"""Where should a segmentation model upsample and take the argmax? Latency and mIoU of each choice.

    PYTHONPATH=. python benchmarks/seg_export.py [--checkpoint runs/camvid/best.pt] [--data seg.yaml]
        [--val-images 101] [--threads 2] [--runs 30] [--calib-images 32]

The graph's head (`export.segment`): `full` (logits upsampled in the graph), `stride` (logits at
the model's stride; the device upsamples them bilinearly, `linear`, or repeats the argmax,
`nearest`), `argmax` (class ids out of the graph). Each as full int8 TFLite with int8 I/O
(calibrated on `--calib-images` of the scored data's train images); `stride` and `argmax` also as
fp32 TFLite, the model alone timed in both, interleaved: the int8 speed-up. At the checkpoint's
input size (CamVid: 480x360), timed on CamVid's 480x360 frames through the device path with
`--threads` threads: the model alone (`Backend.predict`) and frame to class map
(`Segmenter.segment`: letterbox, model, upsampling, argmax). mIoU on `--data`'s val split (default
CamVid val, ../shared/data/camvid) through `evaluate.validate`, the device's pre/post-processing;
argmax agreement with the float model on 8 of its val images. Picks the fastest int8 variant
within 0.5 mIoU points of the best int8 one, the choice `export.segment.DEFAULT_HEAD` should
match. Without a checkpoint, an untrained `--model` (lraspp-mnv3s, the edge model; or
lraspp-mnv3s-min) at 480x360 gives the latencies only. Writes runs/benchmarks/<--name>.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from camvid_seg import CAMVID, NAMES, camvid_yaml
from common import OUT

VARIANTS = {"full": ("full", "linear"), "stride_linear": ("stride", "linear"), "stride_nearest": ("stride", "nearest"),
            "argmax": ("argmax", "linear")}  # name: (seg_head, seg_upsample)
PRECISIONS = {"tflite_fp32": ("fp32", "float"), "tflite_int8": ("int8", "int8")}
FP32_HEADS = ("stride", "argmax")  # fp32 only where the int8 speed-up is measured: each conversion is minutes here


def variant(head: str) -> str:
    """The artifacts' name for a graph head (`stride` is exported once, upsampled linearly)."""
    return "stride_linear" if head == "stride" else head


def source_backend(checkpoint: str | None, threads: int, model: str = "lraspp-mnv3s"):
    from edgecnn.export.torch_backend import TorchBackend
    from edgecnn.models import build_model

    if checkpoint:
        return TorchBackend.from_checkpoint(checkpoint, threads=threads)
    import torch

    torch.manual_seed(0)
    meta = {"task": "segment", "names": list(NAMES), "imgsz": [360, 480], "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225]}
    return TorchBackend(build_model(model, num_classes=len(NAMES)), meta, threads=threads)


def export_all(source, work: Path, calib: np.ndarray) -> dict[tuple[str, str], Path]:
    """(variant, precision) → artifact: every head in int8 with int8 I/O, `FP32_HEADS` in fp32 too;
    `stride_nearest` is `stride_linear` with its metadata changed."""
    from edgecnn.export.onnx import export_onnx
    from edgecnn.export.tflite import export_tflite

    paths = {}
    for head in ("full", "stride", "argmax"):
        name = variant(head)
        onnx_path = work / f"{name}.onnx"
        if not onnx_path.is_file():
            export_onnx(source.model, source.meta, onnx_path, imgsz=list(source.input_size), seg_head=head)
        for precision, (kind, io) in PRECISIONS.items():
            if kind == "fp32" and head not in FP32_HEADS:
                continue
            paths[(name, precision)] = target = work / f"{name}_{precision}.tflite"
            if not target.is_file():
                tic = time.perf_counter()
                export_tflite(onnx_path, target, calib, precision=kind, io=io)
                print(f"exported {name} {precision} in {time.perf_counter() - tic:.0f} s", file=sys.stderr)
    paths[("stride_nearest", "tflite_int8")] = with_upsample(paths[("stride_linear", "tflite_int8")], "nearest")
    return paths


def with_upsample(path: Path, upsample: str) -> Path:
    """A copy of a .tflite whose metadata asks the device for `upsample`."""
    from edgecnn.export.tflite import with_tflite_metadata
    from edgecnn.runtime.backends import META_KEY, load_backend

    meta = dict(load_backend(path).meta, seg_upsample=upsample)
    target = path.with_name(path.name.replace("stride_linear", f"stride_{upsample}"))
    target.write_bytes(with_tflite_metadata(path.read_bytes(), {META_KEY: json.dumps(meta).encode()}))
    return target


def timed(call, items: list, runs: int) -> dict[str, float]:
    """Wall ms p50 and min, and CPU ms (the process's, all threads) per call of `call(item)`.

    CPU time is what other jobs on a shared machine disturb least; with one interpreter thread it
    is the latency a quiet core would show, so variants compare on it while the wall times are noisy.
    """
    for item in items[:3]:
        call(item)
    wall = []
    cpu = time.process_time()
    for i in range(runs):
        tic = time.perf_counter()
        call(items[i % len(items)])
        wall.append(time.perf_counter() - tic)
    return {"p50": float(np.median(wall) * 1e3), "min": float(np.min(wall) * 1e3),
            "cpu": (time.process_time() - cpu) * 1e3 / runs}


def measure(source, paths, data: Path | None, frames, parity_images, args) -> list[dict]:
    from edgecnn.evaluate import validate
    from edgecnn.export.parity import check_seg_parity
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.segmenter import Segmenter

    rows = []
    for (variant, precision), path in paths.items():
        row = {"variant": variant, "precision": precision, "size_mb": round(path.stat().st_size / 2**20, 3)}
        for threads in dict.fromkeys((args.threads, 1)):  # wall times with --threads, CPU times with 1
            backend = load_backend(path, threads=threads)
            model = timed(backend.predict, list(parity_images), args.runs)
            frame = timed(Segmenter(backend).segment, frames, args.runs)
            if threads == args.threads:
                row.update(model_ms_p50=model["p50"], model_ms_min=model["min"], frame_ms_p50=frame["p50"],
                           frame_ms_min=frame["min"])
            if threads == 1:
                row.update(model_cpu_ms=model["cpu"], frame_cpu_ms=frame["cpu"], post_cpu_ms=frame["cpu"] - model["cpu"])
        row["argmax_agreement"] = check_seg_parity(source, backend, parity_images, "int8")["argmax_agreement"]
        if data is not None:
            scores = validate(backend, data, max_images=args.val_images)
            row.update(mIoU=scores["mIoU"], pixel_acc=scores["pixel_acc"])
        rows.append(row)
        print(f"{variant:<15} {precision:<12} CPU model {row['model_cpu_ms']:6.1f} frame {row['frame_cpu_ms']:6.1f} ms; "
              f"{args.threads} threads p50 model {row['model_ms_p50']:6.1f} frame {row['frame_ms_p50']:6.1f} ms; "
              f"agree {row['argmax_agreement']:.4f}  mIoU {100 * row.get('mIoU', float('nan')):5.2f}", file=sys.stderr)
    return rows


def int8_speedups(paths, images: np.ndarray, threads: int, runs: int, rounds: int = 5) -> dict[str, dict]:
    """Per head in FP32_HEADS: the model alone (`Backend.predict`) in fp32 and int8 TFLite with
    `threads` threads, p50 ms over `rounds` interleaved rounds of `runs` calls (a drifting load
    weighs on both alike), and int8 / fp32."""
    from edgecnn.runtime.backends import load_backend

    pairs = {head: {p: load_backend(paths[(variant(head), p)], threads=threads) for p in PRECISIONS} for head in FP32_HEADS}
    times: dict = {head: {p: [] for p in PRECISIONS} for head in pairs}
    for _ in range(rounds):
        for head, backends in pairs.items():
            for precision, backend in backends.items():
                times[head][precision].append(timed(backend.predict, list(images), runs)["p50"])
    out = {}
    for head, found in times.items():
        fp32, int8 = (float(np.median(found[p])) for p in PRECISIONS)
        out[head] = {"fp32_ms": round(fp32, 2), "int8_ms": round(int8, 2), "int8_over_fp32": round(int8 / fp32, 2)}
        print(f"{head}: model alone fp32 {fp32:.2f} ms, int8 {int8:.2f} ms ({int8 / fp32:.2f}x)", file=sys.stderr)
    return out


def choose(rows: list[dict]) -> dict:
    """The fastest int8 variant (CPU ms, frame to class map) within 0.5 mIoU points of the best int8 one."""
    int8 = [r for r in rows if r["precision"] == "tflite_int8"]
    best = max((r.get("mIoU", 0.0) for r in int8), default=0.0)
    eligible = [r for r in int8 if r.get("mIoU", 0.0) >= best - 0.005]
    pick = min(eligible, key=lambda r: r["frame_cpu_ms"])
    return {"variant": pick["variant"], "seg_head": VARIANTS[pick["variant"]][0],
            "seg_upsample": VARIANTS[pick["variant"]][1], "rule": "fastest int8 within 0.5 mIoU points of the best"}


def plot(rows: list[dict], path: Path) -> None:
    from edgecnn.plots import figure, save_figure

    fig, ax = figure(1, 1, figsize=(7, 4))
    for precision, marker in (("tflite_fp32", "o"), ("tflite_int8", "s")):
        sub = [r for r in rows if r["precision"] == precision and "mIoU" in r]
        ax.scatter([r["frame_cpu_ms"] for r in sub], [100 * r["mIoU"] for r in sub], marker=marker, label=precision)
        for r in sub:
            ax.annotate(r["variant"], (r["frame_cpu_ms"], 100 * r["mIoU"]), fontsize=7)
    ax.set_xlabel("frame → class map, CPU ms (1 thread)")
    ax.set_ylabel("mIoU (%)")
    ax.legend()
    save_figure(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="an edgecnn seg checkpoint (.pt); default: an untrained --model")
    parser.add_argument("--model", default="lraspp-mnv3s", help="registry model timed without --checkpoint")
    parser.add_argument("--data", help="a seg data.yaml to score on (default with --checkpoint: CamVid)")
    parser.add_argument("--camvid", type=Path, default=CAMVID, help="CamVid (images/, masks/)")
    parser.add_argument("--val-images", type=int, default=101)
    parser.add_argument("--name", default="seg_export", help="names the work folder and the JSON/PNG written")
    parser.add_argument("--reuse", action="store_true", help="keep the artifacts of an earlier run of the same --name")
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    import cv2

    from edgecnn.data import open_dataset
    from edgecnn.export.parity import image_paths, letterboxed_images
    from edgecnn.export.segment import DEFAULT_HEAD
    from edgecnn.fileio import atomic_write_json

    work = OUT / args.name
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    source = source_backend(args.checkpoint, args.threads, args.model)
    have_camvid = (args.camvid / "images" / "val").is_dir()
    data = Path(args.data) if args.data else camvid_yaml(args.camvid, work) if have_camvid and args.checkpoint else None
    images = image_paths(args.camvid / "images" / "val", 101) if have_camvid else []
    if not images:
        raise SystemExit(f"needs CamVid in {args.camvid} (480x360 road scenes to time the frames on; --camvid)")
    scored = image_paths(data, 8) if data else images[:8]  # val images of the scored data: parity
    train = open_dataset(data).images("train") if data else sorted((args.camvid / "images" / "train").glob("*.jpg"))
    calib = letterboxed_images(train[:: max(1, len(train) // args.calib_images)][: args.calib_images], source.input_size)
    frames = [cv2.imread(str(p)) for p in images[:8]]
    paths = export_all(source, work, calib)
    rows = measure(source, paths, data, frames, letterboxed_images(scored[:8], source.input_size), args)
    speedups = int8_speedups(paths, letterboxed_images(scored[:8], source.input_size), args.threads, args.runs)
    float_miou = None
    if data is not None:
        from edgecnn.evaluate import validate

        float_miou = validate(source, data, max_images=args.val_images)["mIoU"]
        for row in rows:
            row["mIoU_drop_points"] = round(100 * (float_miou - row["mIoU"]), 3)
    chosen = choose(rows) if data is not None else None
    result = {"checkpoint": args.checkpoint, "data": str(data) if data else None,
              "input_hw": list(source.input_size), "threads": args.threads,
              "runs": args.runs, "val_images": args.val_images if data else 0, "float_mIoU": float_miou,
              "rows": rows, "int8_speedups": speedups, "chosen": chosen, "default_head": DEFAULT_HEAD}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT / f"{args.name}.json", result)
    if data is not None:
        plot(rows, OUT / f"{args.name}.png")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
