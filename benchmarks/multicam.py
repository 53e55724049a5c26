"""Several cameras in one process (`--interpreters` shared by all, round-robin) against one process per camera.

For 1, 2, 4 and 8 cameras of 640x480: each camera is the real traffic video from ../shared/data
(padded to 640x480; moving shapes when absent) played at `--camera-fps` as a live camera would
deliver it (`live: true`: paced, newest frame only), with a counting line, a zone and events to
JSON lines, so the whole path runs. For each count N, in one run: (a) one site process with the N
cameras, (b) N one-camera site processes at the same time, same `threads` per interpreter, all under
`nice`, measured over `--seconds` from `--warmup` after every camera's first frame: frames from each camera's JSON lines, CPU
seconds of the processes from /proc; SIGTERM ends them and their reports give the latencies.
On a CPU shared with other jobs, N processes get more of it than one (the scheduler shares
between threads), so the FPS ratio favours (b) there; CPU milliseconds per frame do not depend on
the share. Figures: per-camera FPS, CPU ms per frame,
capture-to-event latency (each camera's p50/p95, their median), total FPS and the ratio (a)/(b),
memory (the processes' proportional set size, shared pages split between them);
then the detector's time per image when N images go in one call (`--batches`: the same int8 TFLite
exported with a batch of N): whether batching would pay.

    PYTHONPATH=. python benchmarks/multicam.py [--model det.tflite] [--counts 1 2 4 8] [--batches 1 2 4 8] [--seconds 25]

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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgecnn.fileio import atomic_write_json

from stream_fps import SIZE, stream_frames

ROOT = Path(__file__).resolve().parents[1]


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
    interpreters = min(args.interpreters, len(names))  # a camera has one frame in flight at most
    path.write_text(f"model: {args.model}\nthreads: {args.threads}\ninterpreters: {interpreters}\n"
                    f"sinks:\n  jsonl: {path.stem}-out\ncameras:\n{cameras}")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> float:
    """Proportional set size of a process in MB (/proc/<pid>/smaps_rollup): shared pages (libraries,
    the model file) split between the processes that map them, so N processes' sum is what they take."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames_written(sites: list[Path]) -> dict[str, int]:
    """Frames each camera has processed so far: its JSON lines (one per frame)."""
    return {f"{site.stem}/{jsonl.stem}": jsonl.read_text().count("\n")
            for site in sites for jsonl in sorted((site.parent / f"{site.stem}-out").glob("cam*.jsonl"))}


def run_processes(sites: list[Path], cameras: int, args) -> dict:
    """One `edgecnn.runtime.app cameras=` process per site, all at once, measured over `--seconds`
    once all `cameras` have processed a frame and `--warmup` more seconds have passed: frames from
    each camera's JSON lines, CPU time from /proc; then SIGTERM, and each process's report gives
    the capture-to-event latencies."""
    for site in sites:
        shutil.rmtree(site.parent / f"{site.stem}-out", ignore_errors=True)
    keys = ["conf=0.01", "track_conf=0.02", "low_conf=0.01", f"max_det={args.objects}", "log_every=0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(["nice", "-n", "10", sys.executable, "-m", "edgecnn.runtime.app", f"cameras={site}",
                               *keys, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=site.parent) for site in sites]
    try:
        deadline = time.monotonic() + 300
        while sum(1 for count in frames_written(sites).values() if count) < cameras:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the site processes did not start")
            time.sleep(0.5)
        time.sleep(args.warmup)
        t0, cpu0, frames0 = time.monotonic(), sum(cpu_seconds(p.pid) for p in procs), frames_written(sites)
        time.sleep(args.seconds)
        t1, cpu1, frames1 = time.monotonic(), sum(cpu_seconds(p.pid) for p in procs), frames_written(sites)
        memory = sum(memory_mb(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode:
            raise RuntimeError(f"a site process failed ({proc.returncode}): {err[-2000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    fps = {cam: (frames1[cam] - frames0.get(cam, 0)) / (t1 - t0) for cam in frames1}
    return {"reports": reports, "camera_fps": fps, "cpu_s": cpu1 - cpu0, "seconds": t1 - t0, "memory_mb": memory,
            "frames": sum(frames1.values()) - sum(frames0.values())}


def figures(run: dict) -> dict:
    cameras = [c for r in run["reports"] for c in r["cameras"].values()]
    fps = list(run["camera_fps"].values())
    to_event = [c["latency_ms_p50"] for c in cameras if c["latency_ms_p50"] is not None]
    to_event95 = [c["latency_ms_p95"] for c in cameras if c["latency_ms_p95"] is not None]
    return {"total_fps": round(sum(fps), 2), "camera_fps_min": round(min(fps), 2), "camera_fps_max": round(max(fps), 2),
            "cpu_ms_per_frame": round(1000 * run["cpu_s"] / run["frames"], 1) if run["frames"] else None,
            "cpu_cores_used": round(run["cpu_s"] / run["seconds"], 2),
            "event_latency_ms_p50": round(float(np.median(to_event)), 1) if to_event else None,
            "event_latency_ms_p95": round(float(np.median(to_event95)), 1) if to_event95 else None,
            "inference_ms_p50": round(float(np.median([c.get("inference_ms_p50") or np.nan for c in cameras])), 2),
            "dropped": sum(c["dropped"] for c in cameras), "memory_mb": round(run["memory_mb"], 1)}


def compare(n: int, video: Path, work: Path, args) -> dict:
    """N cameras in one process and in N processes, `--rounds` times in alternating order (the load
    drifts); each figure is the median over rounds."""
    names = [f"cam{i}" for i in range(n)]
    sites = {"one_process": [site_file(work / f"site{n}.yaml", names, video, args)],
             "separate_processes": [site_file(work / f"alone{n}-{name}.yaml", [name], video, args) for name in names]}
    rounds: dict[str, list[dict]] = {mode: [] for mode in sites}
    loads = []
    for r in range(args.rounds):
        for mode in (list(sites) if r % 2 == 0 else list(sites)[::-1]):
            loads.append(os.getloadavg()[0])
            rounds[mode].append(figures(run_processes(sites[mode], n, args)))
    row = {mode: {key: _median([f[key] for f in found]) for key in found[0]} for mode, found in rounds.items()}
    one, apart = row["one_process"], row["separate_processes"]
    row.update(cameras=n, rounds=rounds, load_average=round(float(np.median(loads)), 1),
               ratio=round(one["total_fps"] / apart["total_fps"], 2) if apart["total_fps"] else None,
               cpu_per_frame_ratio=round(apart["cpu_ms_per_frame"] / one["cpu_ms_per_frame"], 2)
               if one["cpu_ms_per_frame"] and apart["cpu_ms_per_frame"] else None)
    return row


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.median(values)), 2) if values else None


def batched_inference(batches: list[int], threads: int, work: Path) -> dict[int, float]:
    """Milliseconds per image when N images go through the detector in one call, for each N: the
    tests' int8 yolo-n exported as full int8 TFLite of batch N (`export_onnx(batch=N)`), N images
    per call: whether a batched export would pay."""
    import torch

    from edgecnn.export.onnx import export_onnx
    from edgecnn.export.tflite import export_tflite
    from edgecnn.models import build_model
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.timing import measure_latency
    from tests.runtime_models import DETECTOR_IMGSZ, NAMES, calibration_frames, spread_statistics

    torch.manual_seed(0)  # the seed and statistics of tests/runtime_models.py's yolo-n
    model = spread_statistics(build_model("yolo-n", num_classes=len(NAMES)))
    meta = {"task": "detect", "names": NAMES, "imgsz": DETECTOR_IMGSZ, "strides": [8, 16, 32],
            "mean": [0.0] * 3, "std": [1.0] * 3}
    calib = calibration_frames((DETECTOR_IMGSZ, DETECTOR_IMGSZ))
    backends = {}
    for n in batches:
        onnx_path = export_onnx(model, meta, work / f"det_b{n}.onnx", DETECTOR_IMGSZ, batch=n)
        backends[n] = load_backend(export_tflite(onnx_path, work / f"det_b{n}_int8.tflite", calib, precision="int8"),
                                   threads)
    rounds = {n: [] for n in batches}
    for _ in range(3):  # interleaved: a drifting load weighs on every batch size alike
        for n, backend in backends.items():
            rounds[n].append(measure_latency(backend, runs=20, warmup=3, batch=n)["latency_ms_p50"] / n)
    return {n: round(float(np.median(ms)), 2) for n, ms in rounds.items()}


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
    parser.add_argument("--counts", type=int, nargs="*", default=[1, 2, 4, 8], help="cameras (none: --batches only)")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 8], help="detector batch sizes timed")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, after --warmup")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after every camera's first frame")
    parser.add_argument("--rounds", type=int, default=2, help="repeats, alternating which mode goes first")
    parser.add_argument("--camera-fps", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1, help="threads per interpreter")
    parser.add_argument("--interpreters", type=int, default=2, help="detector interpreters of the one process")
    parser.add_argument("--objects", type=int, default=10, help="most boxes per frame")
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks" / "multicam.json"))
    args = parser.parse_args()
    if not args.model:
        from tests.runtime_models import exported_models

        args.model = str(exported_models("yolo-n")["det_tflite"])
    args.model = str(Path(args.model).resolve())
    results = []
    with tempfile.TemporaryDirectory(prefix="multicam-") as tmp:
        work = Path(tmp)
        video = camera_video(work / "camera.mp4", args.seconds, args.camera_fps)
        for n in args.counts:
            results.append(row := compare(n, video, work, args))
            one, apart, ratio, cpu_ratio, load = (row[k] for k in ("one_process", "separate_processes", "ratio",
                                                                   "cpu_per_frame_ratio", "load_average"))
            print(f"{n} cameras: one process {one['total_fps']} FPS (per camera {one['camera_fps_min']}-"
                  f"{one['camera_fps_max']}, capture→event p50 {one['event_latency_ms_p50']} ms, "
                  f"{one['cpu_ms_per_frame']} CPU ms/frame, {one['memory_mb']} MB); separate {apart['total_fps']} FPS "
                  f"(capture→event p50 {apart['event_latency_ms_p50']} ms, {apart['cpu_ms_per_frame']} CPU ms/frame, "
                  f"{apart['memory_mb']} MB); "
                  f"FPS ratio {ratio}, CPU per frame separate/one {cpu_ratio}; load {load:.1f}", flush=True)
        os.nice(10)  # as the site processes
        batched = batched_inference(args.batches, args.threads, work) if args.batches else {}
    if batched:
        print(f"TFLite int8 ms per image at batch {', '.join(f'{n}: {ms}' for n, ms in batched.items())}")
    out = Path(args.out)
    atomic_write_json(out, {"model": Path(args.model).name, "size": list(SIZE), "camera_fps": args.camera_fps,
                            "seconds": args.seconds, "threads": args.threads, "cpus": os.cpu_count(),
                            "nice": 10, "results": results, "tflite_int8_ms_per_image_by_batch": batched})
    if results:
        plot(results, out.with_suffix(".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
