"""Events end to end: capture-to-MQTT latency, the event and clip machinery's CPU share, and a soak.

One site (runtime/site.py, `edgecnn track cameras=`) runs the int8 yolo-n at 320 on two cameras:
`street`, a real traffic video (shared data's car_traffic_small.mp4, 640x360, looped `--loops` times;
`--video` another, e.g. a synthetic one for a detector trained on `edgecnn data synth`) read in order
as fast as the detector goes (accelerated: faster than real time whenever the detector allows), with a
horizontal line, three vertical ones and a zone, and
`yard`, a live RTSP stream from GStreamer's RTSP server (a moving test pattern, 640x480, 15 fps).
Events go to a JSON lines file, to a real Mosquitto broker on loopback (a subscriber with a
persistent session notes when each arrives) and trigger clips and snapshots. During the run:

- the RTSP server is stopped twice (camera_down / camera_up; the source reconnects on its own);
- the broker is stopped for 15 s and restarted (events wait in the on-disk queue);
- the clips directory is a small tmpfs that fills up (retention has to make room; failed writes
  are counted). Without the right to mount, a directory with a small `clip_mb` budget instead.

At the end: every event of each camera equals an offline replay of that camera's own tracks
(runtime/offline.py `replay_events` on the site's `<camera>.jsonl`; `dwell` is left out for the
live camera, whose clock is the monotonic capture time the JSON lines do not keep), every event
reached the subscriber (first arrivals in order, duplicates counted), nothing was dropped by the
queue's bound, and the process's memory (RSS) is sampled every 2 s. Latency: capture to the frame's
events sent (the site's report, per camera), and event to subscriber from probe events that a thread
publishes five times a second through the site's own MQTT sink (the detector's tracks need not
make events steadily for that figure).

CPU: the thread CPU time of `CameraEvents.frame` (event building, the JPEG ring, clip triggers,
queueing) on the pipeline thread, plus the threads the machinery owns (the MQTT courier and paho's
network thread, the clip writer, the camera watcher), over the whole process's CPU time. A clip's
writing cost is measured too: the same 10 s of 640x480 JPEG frames written as MJPEG/AVI and as
mp4v/MP4.

Memory: the RSS and, every 2 s, the sizes of the site path's per-track and per-frame structures
(tracker, counter, event builder, stage timings, clip ring, queues), their maximum and end.

    nice -n 15 env PYTHONPATH=. python benchmarks/events.py [--seconds 180] [--model det.tflite --trained]
        [--video synth.mp4]   # e.g. a trained int8 yolo-n on a video from `edgecnn data synth kind=video`

Writes runs/benchmarks/events.{json,png}. Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest.mock import patch

import cv2
import numpy as np

from edgecnn.fileio import atomic_write_json
from edgecnn.runtime import site as site_module
from edgecnn.runtime.clips import FORMATS, Clip, ClipWriter
from edgecnn.runtime.counting import load_regions
from edgecnn.runtime.event_sinks import CameraEvents
from edgecnn.runtime.events import Event
from edgecnn.runtime.offline import replay_events
from tests.mqtt_broker import Broker, Subscriber, free_port, mosquitto_available
from tests.rtsp_server import RtspServer, rtsp_server_missing

ROOT = Path(__file__).resolve().parents[1]


VIDEO = Path(os.environ.get("EDGECNN_SHARED_DATA", ROOT.parent / "shared" / "data")) / "video" / "car_traffic_small.mp4"
SHARED_VIDEO = Path("/work/shared/data/video/car_traffic_small.mp4")
# the tests' yolo-n is seeded, not trained: it scores everything around 0.01 (tests/runtime_models.py)
THRESHOLDS = {"conf": 0.005, "track_conf": 0.008, "low_conf": 0.005, "max_det": 20}
AT_FRAME = ("appeared", "line_cross", "zone_enter", "dwell")  # kinds whose epoch is the frame they come in
STREET_LINES = """lines:
  - name: middle
    points: [[0.0, 0.55], [1.0, 0.55]]
    band: 0
  - name: centre
    points: [[0.5, 0.0], [0.5, 1.0]]
  - name: west
    points: [[0.25, 0.0], [0.25, 1.0]]
  - name: east
    points: [[0.75, 0.0], [0.75, 1.0]]
zones:
  - name: left
    points: [[0.0, 0.3], [0.5, 0.3], [0.5, 1.0], [0.0, 1.0]]
    dwell: 2
"""
YARD_LINES = """lines:
  - name: middle
    points: [[0.5, 0.0], [0.5, 1.0]]
    band: 0
zones:
  - name: all
    points: [[0.05, 0.05], [0.95, 0.05], [0.95, 0.95], [0.05, 0.95]]
"""


def cameras_file(work: Path, model: str, video: Path, rtsp: str, clips: Path) -> Path:
    (work / "street.yaml").write_text(STREET_LINES)
    (work / "yard.yaml").write_text(YARD_LINES)
    street, yard = (load_yaml_entries(work / f"{n}.yaml") for n in ("street", "yard"))
    text = (f'model: "{model}"\nthreads: 2\nlog_every: 10\n'
            f'sinks:\n  mqtt: "{{mqtt}}"\n  jsonl: "{work / "out"}"\n  clips: "{clips}"\n  queue: "{work / "queue"}"\n'
            f'cameras:\n  - name: street\n    source: "{video}"\n    live: false\n'
            f'    record: {{pre: 1, post: 1, on: [dwell, zone_enter]}}\n{street}'
            f'  - name: yard\n    source: "{rtsp}"\n    record: {{pre: 1, post: 1, on: [appeared, line_cross, zone_enter]}}\n{yard}')
    path = work / "site.yaml"
    path.write_text(text)
    return path


def load_yaml_entries(path: Path) -> str:
    """The counts file's text indented as a camera entry's keys."""
    return "".join(f"    {line}\n" for line in path.read_text().splitlines())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def structure_sizes(streams: list, instances: list) -> dict[str, int]:
    """The per-track and per-frame structures of the site path, summed over its cameras: what would
    grow in a site that runs for weeks if anything were unbounded."""
    sizes: dict[str, int] = {}

    def add(name: str, n: int) -> None:
        sizes[name] = sizes.get(name, 0) + n

    for stream in streams:
        tracker = stream.pipeline.tracker
        add("tracker_tracks", len(tracker.tracks))
        add("tracker_galleries", len(tracker.metric.samples))
        add("stream_track_ids", len(stream.tracks_seen.last_seen))
        add("stage_samples", sum(len(v) for v in stream.times.samples.values()))
        counter = stream.counter
        if counter is not None:
            add("counter_last_seen", len(counter.last_seen))
            add("line_tracks", sum(len(c.side) + len(c.counted) for c in counter.lines))
            add("zone_tracks", sum(len(z.entered) + len(z.dwell) for z in counter.zones))
            add("zone_recent", sum(len(z.finished) for z in counter.zones))
    for events in instances:
        builder = events.builder
        add("builder_tracks", len(builder.seen) + len(builder.inside) + len(builder.dwelled))
        if events.recorder is not None:
            add("clip_ring_frames", len(events.recorder.ring))
            add("clip_open_frames", len(events.recorder.clip.frames) if events.recorder.clip else 0)
    if instances:
        add("queued_messages", sum(len(s.outbox) for s in instances[0].sinks if hasattr(s, "outbox")))
        writer = next((e.recorder.writer for e in instances if e.recorder is not None), None)
        add("clip_writer_pending_kb", writer.pending_bytes // 1024 if writer else 0)
    return sizes


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of every live thread, by its Python name (Linux: /proc/self/task/<tid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, TypeError):
            continue
        found[thread.name] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def clip_costs(video: Path, seconds: float = 10.0, fps: float = 10.0) -> dict[str, dict[str, float]]:
    """Thread CPU time and size of writing the same clip (640x480 JPEG frames) per format."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < seconds * fps:
        ok, image = capture.read()
        if not ok:
            break
        frames.append((len(frames) / fps, cv2.imencode(".jpg", cv2.resize(image, (640, 480)))[1].tobytes()))
    capture.release()
    costs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            writer = ClipWriter(tmp, fmt)
            path = Path(tmp) / f"clip.{fmt}"
            start = time.thread_time()
            writer._write(Clip(path, 0.0, frames))
            costs[fmt] = {"cpu_ms": round(1000 * (time.thread_time() - start), 1), "frames": len(frames),
                          "mb": round(path.stat().st_size / 2**20, 2)}
            writer.close()
    return costs


class Chaos:
    """The soak's schedule, run in a thread: the RTSP camera drops at 25 % of the run, the broker is
    away for 15 s from 45 %, and the camera drops again while the broker is away (so its camera_down
    and camera_up wait in the on-disk queue)."""

    def __init__(self, seconds: float, rtsp: RtspServer, broker: Broker):
        self.log: list[tuple[float, str]] = []
        self.broker_times: dict[bool, float] = {}  # up → when it was (re)started, False → stopped
        self.stop = threading.Event()
        at = 0.45 * seconds
        self.plan = [(0.25 * seconds, rtsp, "rtsp", False), (0.25 * seconds + 4, rtsp, "rtsp", True),
                     (at, broker, "broker", False), (at + 2, rtsp, "rtsp", False), (at + 6, rtsp, "rtsp", True),
                     (at + 15, broker, "broker", True)]
        self.start = time.time()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for offset, server, what, up in self.plan:
            if self.stop.wait(max(0.0, self.start + offset - time.time())):
                return
            server.start() if up else server.stop()
            now = time.time()
            self.log.append((round(now - self.start, 1), f"{what} {'restarted' if up else 'stopped'}"))
            if what == "broker":
                self.broker_times[up] = now

    @property
    def broker_down(self) -> tuple[float, float] | None:
        return (self.broker_times[False], self.broker_times[True]) if len(self.broker_times) == 2 else None


def mount_tiny_disk(path: Path, mb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def compare(work: Path, camera: str, live: list[dict], fps: float | None, names: list[str],
            size: tuple[int, int]) -> dict:
    """The camera's events against the offline replay of its own tracks (frames of `size`)."""
    regions = load_regions([work / f"{camera}.yaml"], names)
    offline = [e.as_dict() for e in replay_events(work / "out" / f"{camera}.jsonl", regions, size, camera, names,
                                                  fps=fps)]
    key = ("id", "kind", "track", "region", "direction", "frame")
    skip = {"camera_down", "camera_up"} | (set() if fps else {"dwell"})
    mine = [tuple(e.get(k) for k in key) for e in live if e["kind"] not in skip]
    theirs = [tuple(e.get(k) for k in key) for e in offline if e["kind"] not in skip]
    kinds = {}
    for e in live:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    return {"events": len(live), "kinds": kinds, "equal_to_offline": mine == theirs,
            "offline_events": len(theirs), "compared": len(mine)}


def soak(args, work: Path) -> dict:
    from tests.runtime_models import exported_models

    model = str(Path(args.model).resolve()) if args.model else str(exported_models("yolo-n")["det_tflite"])
    thresholds = {} if args.trained else THRESHOLDS
    video = looped(Path(args.video) if args.video else VIDEO if VIDEO.is_file() else SHARED_VIDEO,
                   work / "street.mp4", args.loops)
    rtsp = RtspServer(free_port(), size=(640, 480), fps=15).start()
    broker = Broker(work).start()
    clips = work / "clips"
    tiny = mount_tiny_disk(clips, args.clip_disk_mb)
    path = cameras_file(work, model, video, rtsp.url, clips)
    path.write_text(path.read_text().replace("{mqtt}", broker.url))
    subscriber = Subscriber(broker.port, ["edgecnn/#"], client_id="soak")
    stop, instances, streams, result = threading.Event(), [], [], {}

    class Counted(CameraEvents):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            instances.append(self)

    class Listed(site_module.Stream):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            streams.append(self)

    def run_site():
        result["report"] = site_module.run_site({"cameras": str(path), **thresholds}, stop)

    cpu0, memory, sizes = resource.getrusage(resource.RUSAGE_SELF), [], []
    with patch.object(site_module, "CameraEvents", Counted), patch.object(site_module, "Stream", Listed):
        runner = threading.Thread(target=run_site, name="site")
        runner.start()
        chaos = Chaos(args.seconds, rtsp, broker)
        probe = threading.Thread(target=send_probes, args=(instances, stop), name="probe", daemon=True)
        probe.start()
        started = time.time()
        while runner.is_alive() and time.time() - started < args.seconds:
            memory.append((round(time.time() - started, 1), round(rss_mb(), 1)))
            sizes.append(structure_sizes(streams, instances))
            time.sleep(2.0)
        threads = thread_cpu_s()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        stop.set()
        chaos.stop.set()
        runner.join()
    chaos.thread.join()
    process_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    events = [json.loads(line) for line in (work / "out" / "events.jsonl").read_text().splitlines()]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(r["camera"] != "probe" for r, _ in subscriber.arrivals("/events")) < len(events):
        time.sleep(0.1)
    received = [(r, at) for r, at in subscriber.arrivals("/events") if r["camera"] != "probe"]
    probes = [(r, at) for r, at in subscriber.arrivals("probe/events")]
    subscriber.close()
    broker.stop()
    rtsp.stop()
    report = result["report"]
    names = ["person", "car"]
    per_camera = {c: compare(work, c, [e for e in events if e["camera"] == c],
                             video_fps(video) if c == "street" else None, names,
                             video_size(video) if c == "street" else (640, 480)) for c in ("street", "yard")}
    delivery = delivery_figures(events, received, chaos.broker_down)
    delivery["probe"] = probe_figures(probes, chaos.broker_down)
    machinery = {name: s for name, s in threads.items()
                 if name.startswith(("courier", "paho", "clip-writer", "watch")) and not name.endswith("-soak")}
    events_cpu = sum(e.cpu_s for e in instances) + sum(machinery.values())
    writer = [e.recorder.writer for e in instances if e.recorder is not None]
    delivery["queue_dropped"] = sum(s.outbox.dropped for s in instances[0].sinks if hasattr(s, "outbox"))
    figures = {
        "seconds": args.seconds, "model": Path(model).name, "chaos": chaos.log, "site": report,
        "cameras": per_camera, "delivery": delivery,
        "cpu": {"process_s": round(process_cpu, 2), "events_frame_s": round(sum(e.cpu_s for e in instances), 3),
                "threads_s": {k: round(v, 3) for k, v in machinery.items()},
                "share": round(events_cpu / process_cpu, 4) if process_cpu else None},
        "clips": {"tmpfs_mb": args.clip_disk_mb if tiny else None,
                  **{k: getattr(writer[0], k) if writer else 0 for k in ("written", "failed", "deleted", "dropped")}},
        "memory_mb": {"samples": memory, "after_warmup": memory[min(5, len(memory) - 1)][1],
                      "max": max(m for _, m in memory), "end": memory[-1][1]},
        "sizes": {"max": {k: max(s.get(k, 0) for s in sizes) for k in sizes[-1]}, "end": sizes[-1]},
    }
    return figures


def looped(video: Path, out: Path, times: int = 4) -> Path:
    """The video `times` over (ffmpeg, no re-encoding), so the accelerated camera outlasts the soak."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", str(times - 1), "-i", str(video), "-c", "copy",
                           str(out)], capture_output=True)
    return out if done.returncode == 0 else video


def video_size(video: Path) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(video))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return size


def video_fps(video: Path) -> float:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return fps


def send_probes(instances: list, stop: threading.Event, every: float = 0.2) -> None:
    """Events of a `probe` camera, stamped now, through the site's own MQTT sink (its outbox, courier
    and paho client) five times a second: what the event machinery adds from an event to a
    subscriber, under the site's load, whatever the detector's tracks do."""
    while not instances and not stop.wait(0.1):
        pass
    mqtt = next((s for s in instances[0].sinks if hasattr(s, "connected")), None) if instances else None
    if mqtt is None or not mqtt.connected.wait(30):
        return
    frame = 0
    while not stop.wait(every):
        mqtt.publish(Event("probe", "appeared", time.time(), frame, track=frame))
        frame += 1


def probe_figures(probes: list[tuple[dict, float]], broker_down) -> dict:
    def away(epoch: float) -> bool:
        return bool(broker_down) and broker_down[0] - 1 <= epoch <= broker_down[1] + 10

    firsts = {}
    for record, at in probes:
        firsts.setdefault(record["id"], (record, at))
    up = [1000 * (at - r["epoch"]) for r, at in firsts.values() if not away(r["epoch"])]
    sent = max((r["frame"] for r, _ in firsts.values()), default=-1) + 1
    return {"sent": sent, "unique": len(firsts), "duplicates": len(probes) - len(firsts),
            "in_order": [r["frame"] for r, _ in sorted(firsts.values(), key=lambda x: x[1])] == list(range(len(firsts))),
            "latency_ms_p50": round(float(np.percentile(up, 50)), 2) if up else None,
            "latency_ms_p95": round(float(np.percentile(up, 95)), 2) if up else None,
            "queued_while_away": sum(away(r["epoch"]) for r, _ in firsts.values())}


def delivery_figures(events: list[dict], received: list[tuple[dict, float]], broker_down) -> dict:
    """Lost, duplicated, order of first arrivals; capture-to-subscriber latency of the events sent
    while the broker was up (p50, p95) and of all."""
    sent_ids = [e["id"] for e in events]
    first, order, latency_up, latency_all = set(), [], [], []
    for record, at in received:
        if record["id"] in first:
            continue
        first.add(record["id"])
        order.append(record["id"])
        if record["kind"] in AT_FRAME:
            ms = 1000 * (at - record["epoch"])
            latency_all.append(ms)
            if broker_down is None or not broker_down[0] - 1 <= record["epoch"] <= broker_down[1] + 5:
                latency_up.append(ms)
    outage = [at - broker_down[1] for record, at in received
              if broker_down and broker_down[0] <= record["epoch"] <= broker_down[1]]
    by_camera_sent = {c: [i for i, e in zip(sent_ids, events) if e["camera"] == c] for c in ("street", "yard")}
    by_camera_got = {c: [i for i in order if i in set(by_camera_sent[c])] for c in ("street", "yard")}

    def pct(values, q):
        return round(float(np.percentile(values, q)), 1) if values else None

    return {"sent": len(sent_ids), "received": len(received), "unique": len(first),
            "lost": len(set(sent_ids) - first), "duplicates": len(received) - len(first),
            "in_order": all(by_camera_got[c] == by_camera_sent[c] for c in by_camera_sent),
            "latency_ms_p50": pct(latency_up, 50), "latency_ms_p95": pct(latency_up, 95),
            "latency_ms_p50_all": pct(latency_all, 50), "latency_ms_p95_all": pct(latency_all, 95),
            "latency_ms_max_all": pct(latency_all, 100),
            "made_while_broker_away": len(outage),
            "their_arrival_after_restart_s": [round(min(outage), 2), round(max(outage), 2)] if outage else None}


def plot(figures: dict, out: Path) -> None:
    from edgecnn.plots import figure, save_figure

    fig, (left, right) = figure(1, 2, figsize=(11, 4))
    times, rss = zip(*figures["memory_mb"]["samples"])
    left.plot(times, rss)
    for at, what in figures["chaos"]:
        left.axvline(at, color="grey", lw=0.8, ls="--")
        left.text(at, max(rss), what, rotation=90, fontsize=7, va="top")
    left.set(xlabel="seconds", ylabel="RSS (MB)", title="memory during the soak")
    delivery = figures["delivery"]
    right.bar(["p50", "p95", "p50 all", "p95 all"],
              [delivery[k] or 0 for k in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p50_all", "latency_ms_p95_all")])
    right.set(ylabel="ms", title="capture → MQTT subscriber")
    save_figure(fig, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--model", default=None, help="detector (default: the tests' seeded yolo-n at 320, int8)")
    parser.add_argument("--trained", action="store_true", help="--model is trained: keep its own thresholds")
    parser.add_argument("--video", default=None, help="the street camera's video (default: the shared traffic video), "
                        "e.g. one from `edgecnn data synth kind=video` for a trained --model")
    parser.add_argument("--loops", type=int, default=4, help="times the video is played (the camera outlasts the soak)")
    parser.add_argument("--clip-disk-mb", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks"))
    parser.add_argument("--work", default=None, help="keep the run's files (queue, JSON lines, broker log) here")
    args = parser.parse_args()
    for missing in (None if mosquitto_available() else "mosquitto", rtsp_server_missing()):
        if missing:
            print(f"events benchmark needs {missing}")
            return 1
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="edgecnn-events-") as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        try:
            figures = {"clip_write": clip_costs(VIDEO if VIDEO.is_file() else SHARED_VIDEO), **soak(args, work)}
        finally:  # the clips tmpfs goes, whatever happened
            if os.path.ismount(work / "clips"):
                subprocess.run(["umount", str(work / "clips")], check=False)
    out = Path(args.out)
    atomic_write_json(out / "events.json", figures)
    plot(figures, out / "events.png")
    brief = {k: v for k, v in figures.items() if k not in ("site", "memory_mb", "chaos", "sizes")}
    brief["sizes_max"] = figures["sizes"]["max"]
    brief["memory_mb"] = {k: v for k, v in figures["memory_mb"].items() if k != "samples"}
    brief["capture_to_events_sent_ms_p50"] = {n: c["latency_ms_p50"] for n, c in figures["site"]["cameras"].items()}
    brief["fps"] = {n: c["fps"] for n, c in figures["site"]["cameras"].items()}
    print(json.dumps(brief, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
