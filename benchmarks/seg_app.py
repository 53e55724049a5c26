"""The segmentation app on a 480x360 video: FPS and per-stage latency, without and with the live view.

    PYTHONPATH=. python benchmarks/seg_app.py [--model seg_int8.tflite] [--frames 101] [--threads 2] [--repeats 2]

The app (`runtime.seg_app`: decode, letterbox, model, upsampling + argmax, class areas, one zone,
JSON lines) runs every frame of a video made of CamVid's val images (real road scenes, 480x360;
../shared/data) as fast as it decodes, in two settings interleaved over `--repeats` rounds:
`off` (no live view) and `viewer` (`serve=127.0.0.1:<port>` with a client reading the MJPEG stream
in this process, so the overlay is drawn and encoded up to `serve_fps` times a second). Without
--model it exports an untrained lraspp-mnv3s at 480x360 as full int8 TFLite with int8 I/O and the
default head (latency does not depend on the weights), calibrated on CamVid train images.
Writes runs/benchmarks/seg_app.json. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
from pathlib import Path

import cv2

from common import OUT
from edgecnn.fileio import atomic_write_json
from live_view import free_port, read_stream
from seg_export import CAMVID, source_backend

SIZE = (480, 360)


def default_model(work: Path, threads: int, camvid: Path) -> Path:
    """An untrained lraspp-mnv3s at 480x360, full int8 with int8 I/O (cached in `work`)."""
    from edgecnn.export.onnx import export_onnx
    from edgecnn.export.parity import image_paths, letterboxed_images
    from edgecnn.export.tflite import export_tflite

    target = work / "lraspp-mnv3s_int8.tflite"
    if not target.is_file():
        source = source_backend(None, threads)
        onnx_path = export_onnx(source.model, source.meta, work / "lraspp-mnv3s.onnx", imgsz=list(source.input_size))
        calib = letterboxed_images(image_paths(camvid / "images" / "train", 32), source.input_size)
        export_tflite(onnx_path, target, calib, precision="int8", io="int8")
    return target


def camvid_video(path: Path, frames: int, camvid: Path) -> Path:
    images = sorted((camvid / "images" / "val").glob("*.jpg"))[:frames]
    if not images:
        raise SystemExit(f"needs CamVid in {camvid} for its 480x360 road scenes (--camvid)")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    for image in images:
        writer.write(cv2.resize(cv2.imread(str(image)), SIZE))
    writer.release()
    return path


def run_setting(cfg: dict, setting: str) -> dict:
    from edgecnn.runtime.seg_app import run

    latencies: list[float] = []
    if setting == "viewer":
        port = free_port()
        cfg = {**cfg, "serve": f"127.0.0.1:{port}"}
        threading.Thread(target=read_stream, args=(port, latencies), daemon=True).start()
    report = run(cfg)
    report["viewer_latency_ms_p50"] = round(statistics.median(latencies), 1) if latencies else None
    report["viewer_frames"] = len(latencies)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a segmentation .tflite or .onnx (default: untrained lraspp-mnv3s int8)")
    parser.add_argument("--camvid", type=Path, default=CAMVID, help="CamVid (images/, masks/)")
    parser.add_argument("--frames", type=int, default=101)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = OUT / "seg_app"
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else default_model(work, args.threads, args.camvid)
    video = camvid_video(work / "camvid_val.mp4", args.frames, args.camvid)
    zones = work / "zones.yaml"
    zones.write_text("zones:\n  - name: road_ahead\n    points: [[0.3, 0.6], [0.7, 0.6], [0.9, 1.0], [0.1, 1.0]]\n")
    cfg = {"model": str(model), "source": str(video), "threads": args.threads, "zones": str(zones),
           "jsonl": str(work / "areas.jsonl"), "log_every": 0}
    run_setting(cfg, "off")  # warm-up: file cache, interpreter
    runs = {"off": [], "viewer": []}
    for round_ in range(args.repeats):
        for setting in (("off", "viewer") if round_ % 2 == 0 else ("viewer", "off")):
            runs[setting].append(run_setting(cfg, setting))
            print(f"{setting:<7} {runs[setting][-1]['fps']:6.2f} FPS", file=sys.stderr)
    stages = [k for k in runs["off"][0] if k.endswith("_ms_p50") and k != "viewer_latency_ms_p50"]
    summary = {setting: {"fps": statistics.median(r["fps"] for r in reports),
                         **{k: statistics.median(r[k] for r in reports if r[k] is not None) for k in stages}}
               for setting, reports in runs.items()}
    seen = [r["viewer_latency_ms_p50"] for r in runs["viewer"] if r["viewer_latency_ms_p50"] is not None]
    summary["viewer"]["viewer_latency_ms_p50"] = statistics.median(seen) if seen else None
    result = {"model": str(model), "video": f"CamVid val, {args.frames} frames, {SIZE[0]}x{SIZE[1]}",
              "threads": args.threads, "repeats": args.repeats, "summary": summary, "runs": runs}
    atomic_write_json(OUT / "seg_app.json", result)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
