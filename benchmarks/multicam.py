"""Several cameras in one process (one interpreter, round-robin) against one process per camera.

For 1, 2, 4 and 8 cameras of 640x480: each camera is the real traffic video from ../shared/data
(padded to 640x480; moving shapes when absent) played at `--camera-fps` as a live camera would
deliver it (`live: true`: paced, newest frame only), with a counting line, a zone and events to
JSON lines, so the whole path runs. For each count N, in one run: (a) one site process with the N
cameras, (b) N one-camera site processes at the same time, same keys (`threads`). Each runs
`--seconds` under `nice`; SIGTERM ends it and it prints its report. Figures: per-camera FPS,
capture-to-event latency (p50/p95 over cameras' medians), total FPS and the ratio (a)/(b).

    PYTHONPATH=. python benchmarks/multicam.py [--model det.tflite] [--counts 1 2 4 8] [--seconds 25]

Without --model: the tests' int8 yolo-n at 320 (tests/runtime_models.py: seeded, untrained
weights through the project's exporter; a network's latency does not depend on its weights), with
thresholds lowered and `--objects` boxes at most per frame, which fixes the tracker's load. The
machine is shared: all processes run under `nice -n 10` and the load average is in the JSON.
Writes runs/benchmarks/multicam.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from edgecnn.fileio import atomic_write_json  # noqa: E402
from stream_fps import SIZE, stream_frames  # noqa: E402

COUNTING = ("    lines:\n      - name: mid\n        points: [[0.5, 0.0], [0.5, 1.0]]\n"
            "    zones:\n      - name: left\n        points: [[0, 0.4], [0.4, 0.4], [0.4, 1], [0, 1]]\n")


def camera_video(path: Path, seconds: float, fps: float) -> Path:
    """An mp4 of `seconds` (+ margin) of 640x480 frames at `fps`, the source every camera plays."""
    frames = stream_frames(300)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    for i in range(int((seconds + 15) * fps)):
        writer.write(frames[i % len(frames)])
    writer.release()
    return path


def site_file(path: Path, names: list[str], video: Path, args) -> Path:
    cameras = "".join(f"  - name: {name}\n    source: {video}\n    live: true\n{COUNTING}" for name in names)
    path.write_text(f"model: {args.model}\nthreads: {args.threads}\nsinks:\n  jsonl: {path.stem}-out\n"
                    f"cameras:\n{cameras}")
    return path


def run_processes(sites: list[Path], args) -> list[dict]:
    """Start one `edgecnn.runtime.app cameras=` process per site together, SIGTERM them after
    `--seconds`, return their reports."""
    keys = ["conf=0.01", "track_conf=0.02", "low_conf=0.01", f"max_det={args.objects}", "log_every=0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(["nice", "-n", "10", sys.executable, "-m", "edgecnn.runtime.app", f"cameras={site}",
                               *keys, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=site.parent) for site in sites]
    time.sleep(args.seconds)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode:
            raise RuntimeError(f"a site process failed ({proc.returncode}): {err[-2000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def figures(reports: list[dict]) -> dict:
    cameras = [c for r in reports for c in r["cameras"].values()]
    fps = [c["fps"] for c in cameras]
    to_event = [c["latency_ms_p50"] for c in cameras if c["latency_ms_p50"] is not None]
    to_event95 = [c["latency_ms_p95"] for c in cameras if c["latency_ms_p95"] is not None]
    return {"total_fps": round(sum(fps), 2), "camera_fps_min": round(min(fps), 2), "camera_fps_max": round(max(fps), 2),
            "event_latency_ms_p50": round(float(np.median(to_event)), 1) if to_event else None,
            "event_latency_ms_p95": round(float(np.median(to_event95)), 1) if to_event95 else None,
            "inference_ms_p50": round(float(np.median([c.get("inference_ms_p50") or np.nan for c in cameras])), 2),
            "dropped": sum(c["dropped"] for c in cameras)}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.plots import save_figure

    counts = [r["cameras"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("one_process", "o-"), ("separate_processes", "s--")):
        left.plot(counts, [r[mode]["total_fps"] for r in results], style, label=mode.replace("_", " "))
        right.plot(counts, [r[mode]["event_latency_ms_p50"] for r in results], style, label=mode.replace("_", " "))
    left.set(xlabel="cameras", ylabel="frames per second, all cameras", xticks=counts, title="total FPS")
    right.set(xlabel="cameras", ylabel="ms", xticks=counts, title="capture → event latency, p50")
    left.legend()
    save_figure(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="detector .tflite/.onnx (default: the tests' int8 yolo-n at 320)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--camera-fps", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--objects", type=int, default=10, help="most boxes per frame")
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks" / "multicam.json"))
    args = parser.parse_args()
    if not args.model:
        from runtime_models import exported_models

        args.model = str(exported_models("yolo-n")["det_tflite"])
    args.model = str(Path(args.model).resolve())
    results = []
    with tempfile.TemporaryDirectory(prefix="multicam-") as tmp:
        work = Path(tmp)
        video = camera_video(work / "camera.mp4", args.seconds, args.camera_fps)
        for n in args.counts:
            names = [f"cam{i}" for i in range(n)]
            load = os.getloadavg()[0]
            one = figures(run_processes([site_file(work / f"site{n}.yaml", names, video, args)], args))
            apart = figures(run_processes([site_file(work / f"alone{n}-{name}.yaml", [name], video, args)
                                           for name in names], args))
            ratio = round(one["total_fps"] / apart["total_fps"], 2) if apart["total_fps"] else None
            results.append({"cameras": n, "one_process": one, "separate_processes": apart, "ratio": ratio,
                            "load_average_before": round(load, 2)})
            print(f"{n} cameras: one process {one['total_fps']} FPS (per camera {one['camera_fps_min']}-"
                  f"{one['camera_fps_max']}, capture→event p50 {one['event_latency_ms_p50']} ms); "
                  f"separate {apart['total_fps']} FPS (capture→event p50 {apart['event_latency_ms_p50']} ms); "
                  f"ratio {ratio}; load {load:.1f}", flush=True)
    out = Path(args.out)
    atomic_write_json(out, {"model": Path(args.model).name, "size": list(SIZE), "camera_fps": args.camera_fps,
                            "seconds": args.seconds, "threads": args.threads, "cpus": os.cpu_count(),
                            "nice": 10, "results": results})
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
