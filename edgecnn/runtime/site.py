"""A site: several cameras in one process (`edgecnn track cameras=site.yaml`; runtime/cameras.py).

One detector interpreter (`app.Models`) serves every camera, or `interpreters` of them side by side.
Each camera's capture runs in its own thread (runtime/sources.py: cameras and streams keep only
their newest frame and reconnect on their own; files are read in order) and sets one shared `ready`
event when it has a frame. Each detector thread (one per interpreter) serves the cameras
round-robin (`DueFrames`): after one camera it looks first at the next, and takes the first camera
with a frame due (at most `fps` a second per camera) and none in flight, so a busy camera cannot
starve the others and a slow or dead one delays nobody: it only has no frame to give. It hands each
frame's detections, a frame ahead, to the tracking thread (tracker, counter, events, sinks of that
frame's camera), so interpreters and the Python that follows them run at the same time, and each
camera's frames reach its tracker in order.

Each camera has its own tracker, counter, JSON lines (`jsonl` sink: `<dir>/<camera>.jsonl`, as
`edgecnn track jsonl=` writes) and events (`event_sinks.CameraEvents`: MQTT, webhook, clips, the
events JSON lines). A dropped camera is retried forever (one dead camera never stops a site); its
state (up, reconnecting, ended), frame rate and dropped frames are in the live view, the log and the
report, and each change between up and down is a camera_down / camera_up event.

One interpreter call per frame, not a batch: benchmarks/multicam.py timed the int8 yolo-n at 320
exported for batches of 1, 2, 4 and 8 (TFLite, 2 cores): per image 5.14 → 5.03 ms with one thread,
3.41 → 3.09 ms with two, where two one-thread interpreters side by side give an image every 2.6 ms;
and a batch would make every camera wait for the slowest. What one process
saves is memory (one model, one arena per interpreter: 8 cameras in 173 MB against 598 MB as
8 processes) and the contention of one interpreter per camera.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Mapping


from edgecnn.config import ConfigError
from edgecnn.runtime.app import APP_KEYS, Models, Stream, TrackingPipeline, load_config
from edgecnn.runtime.cameras import Camera, Site, load_site
from edgecnn.runtime.event_sinks import EVENT_KEYS, CameraEvents, open_event_outputs
from edgecnn.runtime.sources import SourceError, open_source

LOG = logging.getLogger("edgecnn.site")
IDLE_WAIT_S = 0.25  # longest sleep without a frame: states and figures of idle cameras still refresh
RECORD_KEYS = {"pre": "clip_pre", "post": "clip_post", "on": "clip_on", "fps": "clip_fps"}


class SiteCamera:
    """One camera of a site: its source, its `app.Stream` (tracker, counter, JSON lines), its events."""

    def __init__(self, camera: Camera, cfg: Mapping[str, Any], models: Models, ready: threading.Event,
                 outputs: tuple[list, Any], event_cfg: Mapping[str, Any], jsonl_dir: Path | None):
        from edgecnn.runtime.sinks import JsonlSink

        self.camera, self.name = camera, camera.name
        self.cfg = {**cfg, "source": camera.source, "live": camera.live,
                    "classes": camera.classes if camera.classes is not None else cfg["classes"]}
        try:
            pipeline = TrackingPipeline(self.cfg, models)
        except ConfigError as err:
            raise ConfigError(f"{camera.where}: classes: {err}") from None
        counter = camera.counter(pipeline.names, cfg["max_age"])
        try:  # a camera or stream that is down starts reconnecting; a missing file is an error
            self.source = open_source(camera.source, live=camera.live, reconnect_timeout=0.0, ready=ready,
                                      wait_if_down=True)
        except SourceError as err:
            raise SourceError(f"{camera.where}: source: {err}") from None
        if self.source.state == "reconnecting":
            LOG.warning("%s: source: %s cannot be reached; the site starts without it and keeps trying",
                        camera.where, camera.label)
        sinks = [JsonlSink(jsonl_dir / f"{self.name}.jsonl", pipeline.names, counter)] if jsonl_dir else []
        sinks_out, writer = outputs
        event_cfg = {**event_cfg, **{RECORD_KEYS[k]: v for k, v in camera.record.items()}}
        records = writer is not None and bool(event_cfg["clip_on"])
        self.events = CameraEvents(self.name, sinks_out, pipeline.names, cfg["max_age"],
                                   writer if records else None, event_cfg)
        self.events.watch(self.source)  # camera_down / camera_up
        self.stream = Stream(self.cfg, pipeline, self.source, sinks, counter, channel=self.name, events=self.events)
        self.state, self.next_at, self.skipped, self.finished = "up", None, 0, False
        self.in_flight = False  # a detector thread has its frame: the next waits for its step

    def due_frame(self):
        """The next frame to detect on, or None: frames come faster than the camera's `fps` are skipped."""
        period = 1.0 / self.camera.fps if self.camera.fps else 0.0
        while (frame := self.source.poll()) is not None:
            if not period:
                return frame
            at = self.stream.clock(frame)
            if self.next_at is None or at >= self.next_at - 1e-6:
                # the next one is due a period after this one was, unless the camera fell behind
                self.next_at = at + period if self.next_at is None or at - self.next_at > period else self.next_at + period
                return frame
            self.skipped += 1
        return None

    def step(self, frame, view, detections) -> None:
        self.stream.step(frame, view, detections)
        if self.stream.stopped:  # max_frames for this camera
            self.finish()

    def watch(self, view) -> None:
        """Log the source's state when it changes (`CameraEvents.watch` sends camera_down / camera_up);
        the page's figures of a camera that has no frames to show."""
        state = "ended" if self.finished else self.source.state
        if state != self.state:
            self.state = state
            LOG.log(logging.WARNING if state == "reconnecting" else logging.INFO, "camera %s: %s", self.name, state)
        if view is not None and state != "up":
            view.publish(None, 0.0, self.figures, channel=self.name)

    def figures(self) -> dict[str, Any]:
        return {**self.stream.figures(()), "state": self.state, "skipped": self.skipped}  # (): no tracks now

    def finish(self) -> None:
        self.finished = True
        self.source.close()

    def report(self, elapsed: float) -> dict[str, Any]:
        """`Stream.report`: its latency_ms_* run from capture to the frame's events sent and its JSON
        line written."""
        return {**self.stream.report(elapsed), "state": self.state, "skipped": self.skipped,
                "events": self.events.published, "source": self.camera.label}

    def close(self, error: BaseException | None = None) -> None:
        self.stream.close(error)  # its sinks and its events
        self.source.close()


def site_config(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], Site]:
    """The app's keys for a site: the command line, then the cameras file's site-wide keys, then
    config.json and the defaults; and the site itself."""
    defaults = APP_KEYS.defaults()
    base = load_config(overrides, "app", require_model=False)
    site = load_site(base["cameras"])
    given = {k for k, v in overrides.items() if k in defaults and v != defaults[k]}
    from_site = {k: v for k, v in site.settings.items() if k not in given}
    cfg = load_config({**base, **from_site, "config": None}, str(site.path))
    return cfg, site


def event_config(cfg: Mapping[str, Any], site: Site) -> dict[str, Any]:
    """EVENT_KEYS from the app's keys (those it has) and the cameras file's sinks."""
    sinks = site.sinks
    found = {k: cfg[k] for k in EVENT_KEYS.keys if k in cfg}
    if sinks.get("jsonl"):
        found["events"] = str(Path(sinks["jsonl"]) / "events.jsonl")
    found.update({k: sinks[k] for k in ("mqtt", "webhook", "clips") if sinks.get(k)})
    if sinks.get("queue"):
        found["queue_dir"] = sinks["queue"]
    return EVENT_KEYS.resolve(found, f"{site.path}: sinks")


def run_site(overrides: Mapping[str, Any], stop: threading.Event | None = None) -> dict[str, Any]:
    """Track every camera of `overrides["cameras"]` until all have ended, Ctrl-C, SIGTERM or `stop`
    is set (by whoever runs a site in a thread)."""
    cfg, site = site_config(overrides)
    event_cfg = event_config(cfg, site)
    models = Models(cfg, cfg["interpreters"])
    ready = threading.Event()
    jsonl_dir = Path(site.sinks["jsonl"]) if site.sinks.get("jsonl") else None
    with contextlib.ExitStack() as stack:
        view = None
        if cfg["serve"]:
            from edgecnn.runtime.web import open_live_view

            view = stack.enter_context(open_live_view(cfg, [c.name for c in site.cameras]))
        try:
            outputs = open_event_outputs(event_cfg, stack)
        except ConfigError as err:  # e.g. a clips directory that cannot be written
            raise ConfigError(f"{site.path}: sinks: {err}") from None
        cameras: list[SiteCamera] = []
        error: BaseException | None = None
        stack.callback(lambda: [camera.close(error) for camera in cameras])
        for camera in site.cameras:
            cameras.append(SiteCamera(camera, cfg, models, ready, outputs, event_cfg, jsonl_dir))
        LOG.info("site %s: %d cameras with %s", site.path.name, len(cameras), Path(cfg["model"]).name)
        start = time.monotonic()
        try:
            serve(cameras, ready, view, cfg["log_every"], stop or threading.Event(), cfg["interpreters"])
        except KeyboardInterrupt:
            LOG.info("stopped")
        except BaseException as err:
            error = err
            raise
        elapsed = time.monotonic() - start
    return site_report(cameras, elapsed)


def serve(cameras: list[SiteCamera], ready: threading.Event, view, log_every: float, stop: threading.Event,
          interpreters: int = 1) -> None:
    """Track each detected frame in turn until every camera has ended or `stop` is set; the
    detector threads (`detect_frames`, one per interpreter) run the interpreters on the next frames
    meanwhile (they release the GIL), so tracking, events and sinks no longer wait for them nor
    they for these."""
    detected: queue.Queue = queue.Queue(maxsize=interpreters)  # a frame ahead per detector: latency stays low
    done = threading.Event()
    due = DueFrames(cameras, ready)
    workers = [threading.Thread(target=detect_frames, args=(due, k, detected, stop, done), name=f"detector{k}",
                                daemon=True) for k in range(interpreters)]
    for worker in workers:
        worker.start()
    running, last_log = interpreters, time.monotonic()
    try:
        while running:
            for camera in cameras:
                camera.watch(view)
            try:
                item = detected.get(timeout=IDLE_WAIT_S)
            except queue.Empty:
                continue
            if item is None:  # a detector thread has stopped: every camera has ended, or `stop`
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            camera, frame, detections = item
            if not camera.finished:  # a frame detected as its camera reached max_frames
                camera.step(frame, view, detections)
            camera.in_flight = False  # after its step: a camera's frames are tracked in order
            if log_every and time.monotonic() - last_log >= log_every:
                last_log = time.monotonic()
                LOG.info("%s", "  ".join(f"{c.name}: {c.state} {c.stream.fps or 0:.1f} FPS, dropped {c.source.dropped}"
                                         for c in cameras))
    finally:
        done.set()
        for worker in workers:
            worker.join()


class DueFrames:
    """Which camera a detector thread serves next: round-robin from the one after the last served,
    the first with a frame due (at most its `fps` a second) and none in flight."""

    def __init__(self, cameras: list[SiteCamera], ready: threading.Event):
        self.cameras, self.ready = cameras, ready
        self.turn, self.lock = 0, threading.Lock()

    def take(self):
        """(camera, frame), marking the camera in flight, or None when no camera has a frame due."""
        n = len(self.cameras)
        with self.lock:
            self.ready.clear()  # before polling: a frame that comes while we look sets it again
            for k in range(n):
                camera = self.cameras[(self.turn + k) % n]
                frame = None if camera.finished or camera.in_flight else camera.due_frame()
                if frame is not None:
                    camera.in_flight = True
                    self.turn = (self.turn + k + 1) % n
                    return camera, frame
        return None

    def ended(self) -> bool:
        return all(camera.finished or (camera.source.state == "ended" and not camera.in_flight)
                   for camera in self.cameras)


def detect_frames(due: DueFrames, interpreter: int, detected: queue.Queue, stop: threading.Event,
                  done: threading.Event) -> None:
    """A detector thread: the frames `due` gives it, on its own interpreter, each frame's
    detections into `detected`; then None (all ended, `stop`), or the error that stopped it."""

    def hand_over(item) -> None:
        while not done.is_set():
            with contextlib.suppress(queue.Full):
                detected.put(item, timeout=IDLE_WAIT_S)
                return

    try:
        while not (stop.is_set() or done.is_set() or due.ended()):
            taken = due.take()
            if taken is None:
                due.ready.wait(IDLE_WAIT_S)
                continue
            camera, frame = taken
            hand_over((camera, frame, camera.stream.pipeline.detect(frame, interpreter)))
        hand_over(None)
    except BaseException as err:  # the tracking thread raises it
        hand_over(err)


def site_report(cameras: list[SiteCamera], elapsed: float) -> dict[str, Any]:
    per_camera = {c.name: c.report(elapsed) for c in cameras}
    frames = sum(r["frames"] for r in per_camera.values())
    report = {"cameras": per_camera, "frames": frames, "fps": round(frames / elapsed, 2) if elapsed else 0.0,
              "seconds": round(elapsed, 2)}
    LOG.info("site: %d frames in %.1f s (%.1f FPS in all); %s", frames, elapsed, report["fps"],
             "; ".join(f"{n}: {r['fps']} FPS, capture to events p50 {r['latency_ms_p50']} ms, dropped {r['dropped']}, "
                       f"reconnects {r['reconnects']}" for n, r in per_camera.items()))
    return report
