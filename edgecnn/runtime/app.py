"""The on-device tracking app: camera → detector → ReID → DeepSORT → window, video, MOT, JSON lines.

`python -m edgecnn.runtime.app model=det.tflite source=0 save=out.mp4` (the bundle's run.sh
adds `config=config.json`, the device's defaults). `run(cfg)` returns the frame rate, the p50
latency of each stage (capture, pre, inference, post, reid, tracking) and capture-to-output
latency; progress is logged every `log_every` seconds and the report at the end.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edgecnn.config import ConfigError, Key, Schema, parse_overrides, run_reporting_errors
from edgecnn.runtime.event_sinks import EVENT_KEYS
from edgecnn.runtime.tracker import TRACKER_KEYS
from edgecnn.runtime.tracker.defaults import FROM_DETECTOR, detector_dependent, resolve as resolve_thresholds

LOG = logging.getLogger("edgecnn.app")
STAGES = ("capture", "pre", "inference", "post", "reid", "cmc", "tracking")

APP_KEYS = Schema(
    Key("config", None, "JSON file of defaults (a bundle's config.json); keys given here win"),
    Key("model", None, "detector artifact (.tflite or .onnx); required"),
    Key("reid", None, "ReID embedder artifact; without one tracking uses motion and overlap only"),
    Key("cameras", None, "cameras file (YAML): several cameras in one process, one detector for all "
        "(runtime/cameras.py); source= is then unused"),
    Key("source", "0", "webcam index, video file, rtsp/http URL, GStreamer pipeline, csi[:N] or picam", type=(int, str)),
    Key("save", None, "annotated video to write (.mp4, .avi): boxes, IDs, trails, FPS"),
    Key("mot", None, "MOTChallenge results file to write"),
    Key("jsonl", None, "JSON lines to write, one object per frame ('-': stdout)"),
    Key("show", False, "show the annotated stream in a window (needs a display)"),
    Key("conf", None, "lowest detection confidence given to the tracker (track_conf starts tracks; default: low_conf)",
        type=float, min=0.0, max=1.0),
    Key("iou", 0.45, "NMS IoU threshold", min=0.0, max=1.0),
    Key("classes", None, "class ids or names to keep (default: all)", type=list),
    Key("max_det", 100, "most detections per frame", min=1),
    Key("threads", None, "interpreter threads (default: the interpreter's)", type=int, min=1),
    Key("interpreters", 1, "detector interpreters a site runs side by side, `threads` each (one camera uses one)",
        min=1),
    Key("providers", None, "ONNX Runtime execution providers in order, names or [name, {options}]", type=list),
    Key("imgsz", None, "expected model input size; it is fixed at export, a different one is an error", type=int, min=32),
    Key("max_frames", 0, "stop after this many frames (0: when the source ends)", min=0),
    Key("live", None, "newest-frame-only reading (default: on for cameras and streams, off for files)", type=bool),
    Key("reconnect_timeout", 60.0, "seconds a dropped stream may stay down before the app exits (0: forever)", min=0.0),
    Key("log_every", 5.0, "seconds between progress lines in the log (0: none)", min=0.0),
    Key("lines", None, "YAML of counting lines and zones (lines: / zones: entries with name, points, classes)"),
    Key("zones", None, "another such YAML, e.g. the zones kept apart from the lines"),
    Key("serve", None, "live view in a browser at host:port (e.g. 127.0.0.1:8080); other than loopback needs a token",
        type=(int, str)),
    Key("token_file", None, "file holding the live view's token (or set $EDGECNN_TOKEN; never on the command line)"),
    Key("serve_fps", 10.0, "most frames per second the live view encodes and sends", min=0.1, max=120.0),
    Key("serve_quality", 75, "JPEG quality of the live view", min=10, max=100),
    Key("cmc", False, "camera-motion compensation: move the tracks with the camera before matching "
        "(moving or shaking cameras; costs a few ms per frame)"),
    detector_dependent(TRACKER_KEYS),
    EVENT_KEYS,
)


class StageTimes:
    """Seconds spent per stage and per frame over the last `window` frames (a site runs for weeks:
    4096 frames, minutes at camera rates, steady percentiles in a few MB for 8 cameras); percentiles in ms."""

    def __init__(self, stages: tuple[str, ...] = STAGES, window: int = 4096):
        self.samples: dict[str, deque[float]] = {name: deque(maxlen=window)
                                                 for name in (*stages, "capture_to_output", "wait", "events")}

    def add(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds)

    def add_model_call(self, captured: float, picked: float, timed: "TimedBackend", done: float) -> None:
        """One frame through a model: capture (the frame's age when picked), pre, inference, post."""
        self.add("capture", picked - captured)
        self.add("pre", timed.started - picked)
        self.add("inference", timed.ended - timed.started)
        self.add("post", done - timed.ended)

    def ms(self, stage: str, q: float = 50) -> float | None:
        values = self.samples[stage]
        return round(1000 * float(np.percentile(values, q)), 3) if values else None

    def recent_ms(self, stage: str, frames: int = 100) -> float:
        """The median of the stage's last `frames` samples, in ms."""
        return round(1000 * float(np.median(list(itertools.islice(reversed(self.samples[stage]), frames)))), 2)


class TrackTally:
    """How many distinct tracks a stream has confirmed, in memory bounded by the tracks alive: an id
    unseen for more than `max_age` frames has been deleted by the tracker and never comes back."""

    def __init__(self, max_age: int = 30):
        self.max_age, self.frames, self.total = max_age, 0, 0
        self.last_seen: dict[int, int] = {}  # live track → frame it was last seen

    def update(self, ids: list[int]) -> None:
        self.frames += 1
        for tid in ids:
            self.total += tid not in self.last_seen
            self.last_seen[tid] = self.frames
        for tid in [t for t, f in self.last_seen.items() if self.frames - f > self.max_age]:
            del self.last_seen[tid]


class TimedBackend:
    """A backend that notes when `predict` starts and ends: the Detector runs pre-processing,
    inference and post-processing in one call, and these two times split it into the three."""

    def __init__(self, backend):
        self.backend = backend
        self.started = self.ended = 0.0

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.started = time.monotonic()
        try:
            return self.backend.predict(images)
        finally:
            self.ended = time.monotonic()


def load_config(overrides: Mapping[str, Any], where: str = "edgecnn.runtime.app", keys: Schema = APP_KEYS,
                require_model: bool = True) -> dict[str, Any]:
    """`keys` (APP_KEYS, or the segmentation app's) resolved from `config=<json>` (if given) updated by `overrides`.

    Model (and cameras file) paths in the config file are relative to the file, so a bundle runs
    from anywhere. A site's cameras file may name the model: `require_model=False` reads it first.
    """
    overrides = dict(overrides)
    defaults: dict[str, Any] = {}
    if overrides.get("config"):
        path = Path(overrides["config"])
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            defaults = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        for key in ("model", "reid", "cameras"):
            if defaults.get(key) and not Path(defaults[key]).is_absolute():
                defaults[key] = str(path.parent / defaults[key])
        for provider in defaults.get("providers") or ():  # e.g. TensorRT's trt_engine_cache_path
            options = provider[1] if isinstance(provider, list) and len(provider) == 2 else {}
            for name, value in options.items():
                if name.endswith("_path") and isinstance(value, str) and not Path(value).is_absolute():
                    options[name] = str(path.parent / value)
        keys.resolve(defaults, str(path))
    cfg = keys.resolve({**defaults, **overrides}, where)
    if require_model and not cfg["model"]:
        raise ConfigError(f"{where}: model= is required (a .tflite or .onnx from `edgecnn export`)")
    return cfg


def open_sinks(cfg: Mapping[str, Any], names: list[str], fps: float, counter=None) -> list:
    """The sinks `cfg` asks for; if one cannot open, those already open are closed again."""
    from edgecnn.runtime.sinks import JsonlSink, MotSink, VideoSink, WindowSink

    return open_each([(cfg["show"], WindowSink), (cfg["save"], lambda: VideoSink(cfg["save"], fps)),
                      (cfg["mot"], lambda: MotSink(cfg["mot"])),
                      (cfg["jsonl"], lambda: JsonlSink(cfg["jsonl"], names, counter))])


def open_each(makers: list) -> list:
    """`make()` for each (wanted, make) pair that is wanted; on an error, those opened are closed again."""
    sinks = []
    try:
        for wanted, make in makers:
            if wanted:
                sinks.append(make())
    except BaseException as err:
        for sink in sinks:
            sink.close(err)
        raise
    return sinks


class Models:
    """The interpreters of one process: the detector (timed; a site may run several copies, its
    `interpreters` key) and the ReID embedder. A site's cameras share one `Models`, each camera has
    its own `TrackingPipeline`."""

    def __init__(self, cfg: Mapping[str, Any], interpreters: int = 1):
        from edgecnn.runtime.backends import load_backend

        # ONNX Runtime takes a provider with options as a (name, dict) tuple; JSON gives a list
        providers = [tuple(p) if isinstance(p, list) else p for p in cfg["providers"]] if cfg["providers"] else None
        backend = load_backend(cfg["model"], threads=cfg["threads"], providers=providers)
        task = backend.meta["task"]
        if task != "detect":
            hint = " (run it with `edgecnn segment`)" if task == "segment" else ""
            raise ConfigError(f"model={cfg['model']}: a {task} model; the tracking app needs a detector{hint}")
        if cfg["imgsz"] and max(backend.input_size) != cfg["imgsz"]:
            raise ConfigError(f"imgsz={cfg['imgsz']}, but {cfg['model']} takes {backend.input_size} (fixed at export)")
        self.meta, self.model_name = backend.meta, Path(cfg["model"]).name
        self.names = list(backend.meta.get("names") or [])
        # a site's detector threads, one interpreter each (an interpreter runs one call at a time)
        self.detectors = [TimedBackend(backend)] + [
            TimedBackend(load_backend(cfg["model"], threads=cfg["threads"], providers=providers))
            for _ in range(interpreters - 1)]
        self.encoder = None
        if cfg["reid"]:
            from edgecnn.runtime.reid import ReidEncoder

            self.encoder = ReidEncoder(load_backend(cfg["reid"], threads=cfg["threads"], providers=providers))


class TrackingPipeline:
    """Detector → ReID → tracker on one frame at a time, timing every stage into `times`;
    with `models`, on interpreters it shares with other pipelines (a site's detector threads call
    `detect`, one interpreter each, and its tracking thread `track`)."""

    def __init__(self, cfg: Mapping[str, Any], models: Models | None = None):
        from edgecnn.runtime.detector import Detector, class_ids
        from edgecnn.runtime.tracker import Tracker

        models = models or Models(cfg)
        # the detector's own thresholds unless the user set them (runtime/tracker/defaults.py)
        cfg = resolve_thresholds(cfg, models.meta, models.model_name)
        self.thresholds = {k: cfg[k] for k in ("conf", *FROM_DETECTOR)}
        self.names, self.encoder = models.names, models.encoder
        self.detectors = [Detector(timed, conf=cfg["conf"], iou=cfg["iou"], classes=class_ids(cfg["classes"], self.names),
                                   max_det=cfg["max_det"]) for timed in models.detectors]
        self.tracker = Tracker.from_config(cfg)
        self.camera = None
        if cfg["cmc"]:
            from edgecnn.runtime.tracker.camera_motion import CameraMotion

            self.camera = CameraMotion()
        self.times = StageTimes()

    def detect(self, frame, interpreter: int = 0):
        """`frame`'s detections that have an area (no crop or camera-motion mask for boxes the
        tracker leaves out). A site calls this from its detector threads, each with its own interpreter."""
        picked = time.monotonic()
        detector = self.detectors[interpreter]
        detections = detector.detect(frame.image)
        self.times.add_model_call(frame.timestamp, picked, detector.backend, time.monotonic())
        return detections.select(detections.has_area())

    def track(self, frame, detections):
        """The confirmed tracks after `frame`'s `detections` (from `detect`)."""
        times = self.times
        features = None
        if self.encoder is not None:
            start = time.monotonic()
            features = self.encoder.encode(frame.image, detections.xyxy)
            times.add("reid", time.monotonic() - start)
        warp = None
        if self.camera is not None:
            start = time.monotonic()
            warp = self.camera.estimate(frame.image, detections.xyxy)
            times.add("cmc", time.monotonic() - start)
        start = time.monotonic()
        tracks = self.tracker.update(detections, features=features, warp=warp)
        times.add("tracking", time.monotonic() - start)
        return tracks


class Stream:
    """One source's run: pipeline → counter → sinks → live view, `step(frame)` once per frame.
    The app runs one; a site (runtime/site.py) one per camera, `channel` naming it on the page."""

    def __init__(self, cfg: Mapping[str, Any], pipeline: TrackingPipeline, source, sinks: list, counter=None,
                 channel: str = "", events=None):
        from edgecnn.runtime.sinks import Annotator
        from edgecnn.runtime.sources import FileSource

        self.cfg, self.pipeline, self.source, self.sinks, self.counter = cfg, pipeline, source, sinks, counter
        self.channel, self.times = channel, pipeline.times
        self.events = events  # event_sinks.CameraEvents: events, clips and their sinks
        self.annotator = Annotator(pipeline.names, counter=counter)
        self.annotate = any(s.annotates for s in sinks)
        # dwell times in video time for files (as fast as they decode), in real time for cameras
        self.video_time = isinstance(source, FileSource) and source.fps
        self.frames, self.fps, self.latency = 0, None, None
        self.tracks_seen = TrackTally(cfg.get("max_age", 30))
        self.start = self.done_at = time.monotonic()

    def step(self, frame, view=None, detections=None):
        """Track, count and write `frame` (its `detections` when a detector thread has them);
        returns its confirmed tracks."""
        times = self.times
        times.add("wait", time.monotonic() - self.done_at)  # blocked on the source: the camera is the bottleneck
        if detections is None:
            detections = self.pipeline.detect(frame)
        tracks = self.pipeline.track(frame, detections)
        self.tracks_seen.update(tracks.ids.tolist())
        if self.counter is not None:
            self.counter.update(tracks, self.clock(frame), frame.image.shape[1::-1])
        if self.events is not None:
            start = time.monotonic()
            self.events.frame(frame.image, frame.index, frame.captured_at, self.clock(frame), tracks, self.counter)
            times.add("events", time.monotonic() - start)
        wanted = self.annotate or (view is not None and view.wants_frame(self.channel))
        annotated = self.annotator.draw(frame.image, tracks, self.fps, self.latency) if wanted else None
        for sink in self.sinks:
            sink.write(frame, tracks, annotated)
        if view is not None:
            view.publish(annotated, frame.captured_at, functools.partial(self.figures, tracks), channel=self.channel)
        self.done_at = time.monotonic()
        times.add("capture_to_output", self.done_at - frame.timestamp)
        self.frames, self.latency = self.frames + 1, 1000 * (self.done_at - frame.timestamp)
        self.fps = self.frames / max(self.done_at - self.start, 1e-9)
        return tracks

    def clock(self, frame) -> float:
        """The frame's time in seconds: video time for files, capture time for cameras."""
        return frame.index / self.source.fps if self.video_time else frame.timestamp

    @property
    def stopped(self) -> bool:
        """`max_frames` reached or a sink (the window) asked to stop."""
        return bool(self.cfg["max_frames"] and self.frames >= self.cfg["max_frames"]) or \
            any(getattr(s, "stopped", False) for s in self.sinks)

    def figures(self, tracks) -> dict[str, Any]:
        """What the live view shows: the run's figures so far, stage latencies over the last 100 frames."""
        times, fps, latency = self.times, self.fps, self.latency
        recent = {s: times.recent_ms(s) for s in STAGES if times.samples[s]}
        return {"frames": self.frames, "fps": round(fps, 2) if fps else None, "latency_ms": latency and round(latency, 1),
                "stages_ms": recent, "tracks_now": len(tracks), "tracks": self.tracks_seen.total,
                "dropped": self.source.dropped, "reconnects": self.source.reconnects, "state": self.source.state,
                "source": self.source.name, "model": Path(self.cfg["model"]).name,
                "counts": self.counter.report() if self.counter is not None else None}

    def report(self, elapsed: float) -> dict[str, Any]:
        times, source = self.times, self.source
        report = {
            "frames": self.frames,
            "fps": round(self.frames / elapsed, 2) if self.frames else 0.0,
            "latency_ms_p50": times.ms("capture_to_output"),
            "latency_ms_p95": times.ms("capture_to_output", 95),
            **{f"{stage}_ms_p50": times.ms(stage) for stage in STAGES if times.samples[stage]},
            "wait_ms_p50": times.ms("wait"),
            **({"events_ms_p50": times.ms("events")} if times.samples["events"] else {}),
            "dropped": source.dropped,
            "reconnects": source.reconnects,
            "tracks": self.tracks_seen.total,
            "thresholds": self.pipeline.thresholds,
        }
        if self.counter is not None:
            report["counts"] = self.counter.summary()
        return report

    def close(self, error: BaseException | None = None) -> None:
        for sink in self.sinks:
            sink.close(error)
        if self.events is not None:
            self.events.close()


def open_camera_events(cfg: Mapping[str, Any], names: list[str], source, outputs: contextlib.ExitStack):
    """The `CameraEvents` of the app's camera (`camera=` names it), or None without event keys."""
    from edgecnn.runtime.event_sinks import CameraEvents, open_event_outputs, wants_events

    if not wants_events(cfg):
        return None
    sinks, writer = open_event_outputs(cfg, outputs)
    events = CameraEvents(cfg["camera"], sinks, names, cfg["max_age"], writer, cfg)
    events.watch(source)
    return events


def run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Track on `cfg["source"]` until it ends, `max_frames`, q in the window, Ctrl-C or SIGTERM.

    `cfg` holds APP_KEYS overrides; with `config=<json>` its values are the defaults. With
    `cameras=<file>` (here or in the config file), every camera of that site (runtime/site.py).
    """
    from edgecnn.runtime.counting import open_counter
    from edgecnn.runtime.sources import open_source

    if load_config(cfg, "app", require_model=False)["cameras"]:
        from edgecnn.runtime.site import run_site

        return run_site(cfg)
    cfg = load_config(cfg, "app")
    pipeline = TrackingPipeline(cfg)
    counter = open_counter(cfg, pipeline.names)
    error: BaseException | None = None
    with _live_view(cfg) as view, contextlib.ExitStack() as outputs, \
            open_source(cfg["source"], live=cfg["live"], reconnect_timeout=cfg["reconnect_timeout"]) as source:
        events = open_camera_events(cfg, pipeline.names, source, outputs)
        stream = Stream(cfg, pipeline, source, open_sinks(cfg, pipeline.names, source.fps or 30.0, counter), counter,
                        events=events)
        LOG.info("tracking %s with %s%s", source.name, Path(cfg["model"]).name,
                 f" + {Path(cfg['reid']).name}" if cfg["reid"] else "")
        last_log = stream.start
        try:
            for frame in source:
                tracks = stream.step(frame, view)
                if cfg["log_every"] and stream.done_at - last_log >= cfg["log_every"]:
                    last_log = stream.done_at
                    LOG.info("%d frames  %.1f FPS  latency %.0f ms  %d tracks", stream.frames, stream.fps,
                             stream.latency, len(tracks))
                if stream.stopped:
                    break
        except KeyboardInterrupt:
            LOG.info("stopped after %d frames", stream.frames)
        except BaseException as err:
            error = err
            raise
        finally:
            stream.close(error)
        elapsed = time.monotonic() - stream.start
    report = {**stream.report(elapsed),
              "artifacts": {k: str(cfg[k]) for k in ("save", "mot", "jsonl") if cfg[k] and cfg[k] != "-"}}
    log_report(report)
    return report


def _live_view(cfg: Mapping[str, Any]):
    """The live view's context (it yields the view), or one that yields None without `serve`."""
    if not cfg["serve"]:
        return contextlib.nullcontext()
    from edgecnn.runtime.web import open_live_view  # http.server and the page load only for a live view

    return open_live_view(cfg)


def log_report(report: Mapping[str, Any]) -> None:
    stages = "  ".join(f"{s} {report[f'{s}_ms_p50']:.1f}" for s in STAGES if report.get(f"{s}_ms_p50") is not None)
    LOG.info("%d frames at %.1f FPS; capture-to-output p50 %s ms, p95 %s ms; dropped %d, reconnects %d, %d tracks",
             report["frames"], report["fps"], report["latency_ms_p50"], report["latency_ms_p95"],
             report["dropped"], report["reconnects"], report["tracks"])
    LOG.info("stage p50 (ms): %s", stages)


def _stop_on_sigterm() -> None:
    """systemd stops with SIGTERM: end like Ctrl-C, so the sinks finish their files."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def app_main(argv: list[str] | None, where: str, keys, run_app: Callable[[dict], dict]) -> int:
    """A device app's command line (`python -m <where> key=value ... [--json]`): help from `keys`,
    errors reported by `run_reporting_errors`, the report as one JSON object on stdout with --json."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    if "-h" in argv or "--help" in argv:
        print(f"usage: python -m {where} key=value ... [--json]\n")
        for key, default, text in keys.help_rows():
            print(f"  {key}={default}  {text}")
        return 0

    def work() -> dict:
        overrides = parse_overrides([a for a in argv if a != "--json"], where)
        _stop_on_sigterm()
        return run_app(overrides)

    code, report = run_reporting_errors(where, work)
    if code:
        return code
    if "--json" in argv:
        print(json.dumps(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    return app_main(argv, "edgecnn.runtime.app", APP_KEYS, run)


if __name__ == "__main__":
    sys.exit(main())
