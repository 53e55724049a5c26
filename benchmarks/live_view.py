"""Tracking FPS with and without the live view, and the live view's latency from capture to viewer.

The tracking app runs the int8 TFLite detector (320) + DeepSORT on a 640x480 video file as fast
as it decodes (every frame, no pacing: the pipeline is CPU-bound, so any CPU the live view takes
shows in the FPS), on `--threads` interpreter threads, in three settings, interleaved over
`--repeats` rounds, each setting first in turn, after one warm-up run, so that load from other
jobs on the machine spreads over all three:

- `off`: no live view;
- `stuck`: `serve=127.0.0.1:0` with one client that opens the stream and never reads;
- `viewer`: the same plus a client that reads the stream and notes, for each frame, the time from
  capture (the part's X-Captured header) to having it whole.

With `--browser` (needs chromium and websocket-client) a last run plays the video at its 30 fps, as
a camera would deliver it, opens the page in headless Chromium and samples the page's own
capture-to-browser latency (decoded and drawn on the canvas); the browser's CPU use makes that
run's FPS no comparison. Target: `stuck` and `viewer` FPS within 10 % of `off`, as the median
over rounds of the ratio within a round (load from other jobs changes over minutes; a round's
runs share most of it). On a shared machine FPS is noisy; the CPU time of the live view's own
work (annotating the frames it sends, publishing, encoding, sending: thread CPU time, which other
processes do not disturb) over the app's CPU time is the share of a CPU-bound pipeline's FPS it
can cost at most.

    PYTHONPATH=. python benchmarks/live_view.py [--model det.tflite] [--frames 300] [--browser]

Without --model it exports the tests' seeded, untrained yolo-n at 320 (cached), with thresholds
lowered and `--objects` boxes per frame, as stream_fps.py does. Writes
runs/benchmarks/live_view.{json,png}. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

import cv2
import numpy as np

from edgecnn.fileio import atomic_write_json
from edgecnn.runtime import app, web
from edgecnn.runtime.sinks import Annotator
from tests.mjpeg_server import parts

from stream_fps import SIZE, stream_frames

ROOT = Path(__file__).resolve().parents[1]


TOLERANCE = 0.10
BROWSER_FRAMES = 600  # 20 s at 30 fps


class Clients:
    """The clients of one setting, in a child process (as a viewer elsewhere would be, they take
    none of the app's interpreter lock); their latencies come back when the run ends."""

    def __init__(self, setting: str, port: int, browser: str | None, work: Path):
        self.setting, self.results = setting, work / f"clients-{port}.json"
        self.proc = None
        if setting != "off":
            command = [sys.executable, __file__, "--clients", setting, "--port", str(port), "--out", str(self.results)]
            self.proc = subprocess.Popen(command + (["--chromium", browser] if browser else []), stdout=subprocess.PIPE,
                                         text=True)
            assert self.proc.stdout.readline().strip() == "ready"  # its start-up is not part of the run

    def close(self) -> dict[str, list[float]]:
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        return json.loads(self.results.read_text()) if self.results.is_file() else {}


def serve_clients(setting: str, port: int, out: Path, browser: str | None) -> None:
    """Child process: a client that never reads, and a reading one or Chromium, until Ctrl-C."""
    latencies: dict[str, list[float]] = {"viewer": [], "page": []}
    print("ready", flush=True)
    try:
        while True:
            try:
                stuck = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)  # the app is still loading its model
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never reads
        if setting == "viewer":
            read_stream(port, latencies["viewer"])
        elif setting == "browser":
            watch_page(browser, port, out.parent / f"chromium-{port}", latencies["page"])
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        atomic_write_json(out, latencies)


def read_stream(port: int, latencies: list[float]) -> None:
    """Read the MJPEG stream, noting for each frame the time from capture to having it whole."""
    reply = None
    while reply is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/stream.mjpg")
            reply = conn.getresponse()
        except OSError:
            time.sleep(0.05)
    for headers, _ in parts(reply.fp):
        latencies.append(1000 * (time.time() - float(headers["x-captured"])))


def watch_page(browser: str, port: int, profile: Path, latencies: list[float]) -> None:
    """The page in headless Chromium; samples its own capture-to-browser latency 4 times a second."""
    from tests.browser import DevTools

    chrome = DevTools(browser, profile)
    try:
        chrome.open_live_view(f"http://127.0.0.1:{port}/", frames=3, timeout=60)
        while True:
            value = chrome.evaluate("browserLatency")
            if value is not None:
                latencies.append(float(value))
            time.sleep(0.25)
    finally:
        chrome.close()


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    for image in frames:
        writer.write(image)
    writer.release()
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def thread_cpu(function, totals: dict, key: str):
    """`function`, adding the CPU time of the thread that runs it to `totals[key]` (other
    processes' load does not count, unlike in FPS)."""
    def timed(*args, **kwargs):
        start = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            totals[key] += time.thread_time() - start

    return timed


# What the live view adds to the app: annotating the frames it sends and publishing (the pipeline's
# thread), encoding (its thread), sending (a thread per client). `off` runs none of them.
LIVE_VIEW_WORK = [(Annotator, "draw", "annotate"), (web.LiveView, "publish", "publish"),
                  (web.LiveView, "_encode", "encoder"), (web.LiveView, "stream", "clients")]


def run_setting(cfg: dict, setting: str, browser: str | None, work: Path) -> dict:
    with socket.socket() as probe:  # a free port for this run
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clients = Clients(setting, port, browser, work)
    live_cpu = {"annotate": 0.0, "publish": 0.0, "encoder": 0.0, "clients": 0.0}
    cpu = time.process_time()
    try:
        with ExitStack() as stack:
            for owner, name, key in LIVE_VIEW_WORK:
                stack.enter_context(patch.object(owner, name, thread_cpu(getattr(owner, name), live_cpu, key)))
            report = app.run({**cfg, **({} if setting == "off" else {"serve": f"127.0.0.1:{port}"})})
    finally:
        latencies = clients.close()
    cpu = time.process_time() - cpu  # the app's process, all threads: model loading, pipeline, live view
    frames = report["frames"]
    result = {"setting": setting, "fps": report["fps"], "cpu_ms_per_frame": round(1000 * cpu / frames, 2),
              "live_view_cpu_ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in live_cpu.items()},
              "live_view_cpu_share": round(sum(live_cpu.values()) / cpu, 4),
              "latency_ms_p50": report["latency_ms_p50"], "frames": frames}
    for name, values in latencies.items():
        if values:
            result[f"{name}_latency_ms_p50"] = round(float(np.median(values)), 1)
            result[f"{name}_latency_ms_p95"] = round(float(np.percentile(values, 95)), 1)
            result[f"{name}_samples"] = len(values)
    logging.info("%s: %.1f FPS %s", setting, report["fps"], {k: v for k, v in result.items() if "_latency" in k})
    return result


def paired_ratio(runs: list[dict], setting: str) -> float:
    """Median over rounds of the setting's FPS over the `off` FPS of the same round: load from
    other jobs changes over minutes, and a round's three runs share most of it."""
    ratios = []
    for n in sorted({r["round"] for r in runs if "round" in r}):
        fps = {r["setting"]: r["fps"] for r in runs if r.get("round") == n}
        ratios.append(fps[setting] / fps["off"])
    return round(float(np.median(ratios)), 3)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["off", "stuck", "viewer"]
    values = [summary[f"fps_{n}"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(["no live view", "a client that\nnever reads", "a reading\nclient"], values,
           color=["#4c72b0", "#dd8452", "#55a868"])
    ax.axhline(values[0] * (1 - TOLERANCE), color="gray", linestyle="--", linewidth=1, label="-10 %")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("tracking FPS (median of rounds)")
    ax.set_title(f"640x480, int8 det + DeepSORT; capture → viewer p50 {summary['viewer_latency_ms_p50']} ms", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="int8 TFLite detector (default: the tests' untrained yolo-n at 320)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300, help="frames per run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three settings")
    parser.add_argument("--objects", type=int, default=8, help="boxes per frame with untrained weights")
    parser.add_argument("--serve-fps", type=float, default=10.0)
    parser.add_argument("--serve-quality", type=int, default=75)
    parser.add_argument("--browser", action="store_true", help="also measure the page's latency in headless Chromium")
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks" / "live_view.json"))
    parser.add_argument("--clients", help=argparse.SUPPRESS)  # the child process of one setting
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chromium", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        serve_clients(args.clients, args.port, Path(args.out), args.chromium)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("edgecnn.app").setLevel(logging.WARNING)

    if args.model:
        model = args.model
    else:
        from tests.runtime_models import exported_models

        model = str(exported_models("yolo-n")["det_tflite"])
    browser = None
    if args.browser:
        from tests.browser import find_chromium

        browser = find_chromium()
        if not browser:
            parser.error("--browser needs chromium (Debian package 'chromium')")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = write_video(work / "traffic_640x480.mp4", stream_frames(max(args.frames, BROWSER_FRAMES if browser else 0)))
        cfg = {"model": model, "source": str(video), "threads": args.threads, "max_frames": args.frames,
               "serve_fps": args.serve_fps, "serve_quality": args.serve_quality, "log_every": 0.0}
        if not args.model:
            cfg.update(conf=0.001, track_conf=0.002, low_conf=0.001, max_det=args.objects)
        run_setting(cfg, "off", None, work)  # warm-up (first interpreter, file cache), not counted
        settings = ("off", "stuck", "viewer")
        order = [settings[(i + k) % 3] for i in range(args.repeats) for k in range(3)]  # each first in turn
        runs = [{**run_setting(cfg, setting, None, work), "round": n // 3} for n, setting in enumerate(order)]
        if browser:  # played at the video's 30 fps, as a camera delivers it, while Chromium starts and watches
            runs.append(run_setting({**cfg, "live": True, "max_frames": BROWSER_FRAMES}, "browser", browser, work))

    def median(setting: str, key: str, digits: int = 2):
        values = [r[key] for r in runs if r["setting"] == setting and key in r]
        return round(float(np.median(values)), digits) if values else None

    summary = {f"fps_{s}": median(s, "fps") for s in ("off", "stuck", "viewer")}
    summary.update({f"cpu_ms_per_frame_{s}": median(s, "cpu_ms_per_frame") for s in ("off", "stuck", "viewer")})
    summary.update({f"live_view_cpu_share_{s}": median(s, "live_view_cpu_share", 4) for s in ("stuck", "viewer")})
    summary.update({
        "fps_ratio_stuck": paired_ratio(runs, "stuck"),
        "fps_ratio_viewer": paired_ratio(runs, "viewer"),
        "viewer_latency_ms_p50": median("viewer", "viewer_latency_ms_p50"),
        "viewer_latency_ms_p95": median("viewer", "viewer_latency_ms_p95"),
        "page_latency_ms_p50": median("browser", "page_latency_ms_p50"),
        "page_latency_ms_p95": median("browser", "page_latency_ms_p95"),
    })
    summary["meets_target"] = min(summary["fps_ratio_stuck"], summary["fps_ratio_viewer"]) >= 1 - TOLERANCE
    off = [r["fps"] for r in runs if r["setting"] == "off"]
    summary["fps_off_spread"] = round((max(off) - min(off)) / float(np.median(off)), 3)  # how far FPS can be trusted
    summary["load_average"] = [round(v, 1) for v in os.getloadavg()]
    result = {**summary, "runs": runs,
              "setup": {"video": f"{SIZE[0]}x{SIZE[1]} file, every frame, no pacing", "detector": Path(model).name,
                        "threads": args.threads, "frames": args.frames, "repeats": args.repeats,
                        "serve_fps": args.serve_fps, "serve_quality": args.serve_quality,
                        "objects_per_frame": None if args.model else args.objects}}
    out = Path(args.out)
    atomic_write_json(out, result)
    plot(summary, out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))
    print(f"CPU per frame {summary['cpu_ms_per_frame_off']} / {summary['cpu_ms_per_frame_stuck']} / "
          f"{summary['cpu_ms_per_frame_viewer']} ms (off / stuck client / viewer); the live view's own share "
          f"{summary['live_view_cpu_share_stuck']:.1%} / {summary['live_view_cpu_share_viewer']:.1%}")
    print(f"FPS {summary['fps_off']} without the live view, {summary['fps_stuck']} with a client that never reads "
          f"({summary['fps_ratio_stuck']:.1%}), {summary['fps_viewer']} with a viewer ({summary['fps_ratio_viewer']:.1%}); "
          f"capture → viewer p50 {summary['viewer_latency_ms_p50']} ms"
          + (f", → page {summary['page_latency_ms_p50']} ms" if summary["page_latency_ms_p50"] is not None else "")
          + f"; target within {TOLERANCE:.0%}: {'met' if summary['meets_target'] else 'NOT met'} (FPS of the runs "
          f"without it spread over {summary['fps_off_spread']:.0%} of their median; load {summary['load_average']}); {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
