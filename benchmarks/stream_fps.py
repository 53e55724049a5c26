"""End-to-end tracking FPS on a live MJPEG stream over loopback, through a drop and a reconnect.

A real MJPEG HTTP server streams 640x480 JPEG frames (the real traffic video from
../shared/data when present, moving shapes otherwise) at `--camera-fps`; its first connection
drops after `--drop-after` frames, as a flaky IP camera would. The tracking app reads it with the
newest-frame-only source and runs the int8 TFLite detector at 320 + the int8 ReID embedder +
DeepSORT on `--threads` interpreter threads. Target: >= 30 FPS.

    PYTHONPATH=. python benchmarks/stream_fps.py [--model det.tflite --reid reid.tflite]

Without --model it exports the tests' seeded, untrained yolo-n (320) and ReID models (cached).
Untrained weights score every box alike, so the thresholds are lowered and `--objects` caps the
boxes per frame, which fixes the load on ReID and the tracker to that many objects; latency of
the networks themselves does not depend on their weights. Writes runs/benchmarks/stream_fps.json
and .png. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgecnn.fileio import atomic_write_json
from edgecnn.runtime.app import STAGES, run
from tests.mjpeg_server import MjpegServer

ROOT = Path(__file__).resolve().parents[1]


VIDEO = ROOT.parent / "shared" / "data" / "video" / "car_traffic_small.mp4"
SIZE = (640, 480)
TARGET_FPS = 30.0


def stream_frames(n: int = 300) -> list[np.ndarray]:
    """640x480 frames: the real traffic video padded to 4:3, or moving shapes on noise."""
    frames = []
    capture = cv2.VideoCapture(str(VIDEO))
    while len(frames) < n and capture.isOpened():
        ok, image = capture.read()
        if not ok:
            break
        pad = (SIZE[1] - image.shape[0] * SIZE[0] // image.shape[1]) // 2
        image = cv2.resize(image, (SIZE[0], SIZE[1] - 2 * pad))
        frames.append(cv2.copyMakeBorder(image, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)))
    capture.release()
    if not frames:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        for i in range(n):
            image = base.copy()
            for k in range(6):
                x = (40 + 60 * k + 4 * i) % (SIZE[0] - 60)
                cv2.rectangle(image, (x, 80 + 50 * k), (x + 50, 180 + 50 * k), (40 * k, 200, 255 - 40 * k), -1)
            frames.append(image)
    return frames


def default_models() -> tuple[str, str]:
    from tests.runtime_models import exported_models

    models = exported_models("yolo-n")
    return str(models["det_tflite"]), str(models["reid_tflite"])


def plot(report: dict, path: Path) -> None:
    from edgecnn.plots import figure, save_figure

    stages = [s for s in STAGES if report.get(f"{s}_ms_p50") is not None]
    values = [report[f"{s}_ms_p50"] for s in stages] + [report["latency_ms_p50"]]
    fig, ax = figure(figsize=(7, 3.5))
    ax.bar(stages + ["capture→output"], values, color=["#4c72b0"] * len(stages) + ["#dd8452"])
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title(f"MJPEG 640x480, int8 det 320 + ReID + DeepSORT\n{report['fps']:.1f} FPS (target "
                 f"{TARGET_FPS:.0f}), {report['reconnects']} reconnect", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    save_figure(fig, path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="int8 TFLite detector (default: the tests' untrained yolo-n at 320)")
    parser.add_argument("--reid", help="ReID embedder (default: the tests' untrained one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=450, help="frames to process")
    parser.add_argument("--camera-fps", type=float, default=60.0, help="the stream's frame rate")
    parser.add_argument("--drop-after", type=int, default=150, help="frames before the stream drops once")
    parser.add_argument("--objects", type=int, default=8, help="boxes per frame with untrained weights")
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks" / "stream_fps.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)

    model, reid = (args.model, args.reid) if args.model else default_models()
    cfg = {"model": model, "reid": reid, "threads": args.threads, "max_frames": args.frames}
    if not args.model:
        cfg.update(conf=0.001, track_conf=0.002, low_conf=0.001, max_det=args.objects)
    # encoded once: a camera encodes in hardware, so the server's JPEG work must not count here
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for f in stream_frames()]
    server = MjpegServer(lambda conn, i: jpegs[i % len(jpegs)], drop_after=args.drop_after, fps=args.camera_fps)
    try:
        started = time.monotonic()
        report = run({**cfg, "source": server.url})
        wall = time.monotonic() - started
    finally:
        server.stop()
    result = {
        "fps": report["fps"], "target_fps": TARGET_FPS, "meets_target": report["fps"] >= TARGET_FPS,
        "latency_ms_p50": report["latency_ms_p50"], "latency_ms_p95": report["latency_ms_p95"],
        **{k: v for k, v in report.items() if k.endswith("_ms_p50")},
        "frames": report["frames"], "stream_frames_sent": server.sent, "dropped": report["dropped"],
        "reconnects": report["reconnects"], "tracks": report["tracks"], "wall_s": round(wall, 2),
        "setup": {"stream": f"MJPEG {SIZE[0]}x{SIZE[1]} at {args.camera_fps:g} fps over loopback, drop after "
                            f"{args.drop_after} frames", "detector": Path(model).name, "reid": Path(reid).name,
                  "threads": args.threads, "objects_per_frame": None if args.model else args.objects},
    }
    out = Path(args.out)
    atomic_write_json(out, result)
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result, indent=2))
    print(f"{result['fps']:.1f} FPS (target {TARGET_FPS:.0f}: {'met' if result['meets_target'] else 'NOT met'}), "
          f"capture-to-output p50 {result['latency_ms_p50']} ms, {result['reconnects']} reconnect(s); {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
