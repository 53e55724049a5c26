"""The event outputs the app's keys ask for, and the per-camera glue that feeds them.

`EVENT_KEYS` are the keys (`events=`, `mqtt=`, `webhook=`, `clips=` and their options);
`open_event_outputs(cfg)` opens the sinks and the clip writer they name; `CameraEvents` is one
camera's path from a frame's tracks to events: `EventBuilder`, then the clip recorder (which names
each event's clip and snapshot), then every sink. A camera runner (single or multi-camera) calls
`CameraEvents.frame` once per processed frame and `CameraEvents.camera_state` when its source goes
down or comes back.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

import numpy as np

from edgecnn.config import ConfigError, Key, Schema
from edgecnn.runtime.clips import ClipRecorder, ClipWriter
from edgecnn.runtime.events import KINDS, Event, EventBuilder, EventSink, camera_event

EVENT_KEYS = Schema(
    Key("camera", "camera", "this camera's name in events, MQTT topics and clip paths (letters, digits, - and _)"),
    Key("events", None, "JSON lines of events, appended (one Event per line; '-': stdout)"),
    Key("mqtt", None, "MQTT broker for events and counts: mqtt://[user:pass@]host[:port] or mqtts://"),
    Key("mqtt_prefix", "edgecnn", "MQTT topic prefix (<prefix>/<camera>/events, /counts, <prefix>/availability)"),
    Key("mqtt_discovery", "homeassistant", "Home Assistant discovery prefix for the count sensors ('': none)"),
    Key("webhook", None, "URL that gets a POST of every event's JSON (retried with backoff)"),
    Key("queue_dir", "~/.local/state/edgecnn", "where events wait on disk while the broker or endpoint is away"),
    Key("queue_max", 10_000, "most events kept waiting per sink; past it the oldest are dropped and counted", min=1),
    Key("clips", None, "directory for event clips (pre/post-roll) and JPEG snapshots"),
    Key("clip_on", ["line_cross", "zone_enter", "dwell"], "event kinds that record a clip and a snapshot",
        type=list),
    Key("clip_pre", 3.0, "seconds of video kept before the event", min=0.0),
    Key("clip_post", 5.0, "seconds recorded after the last event of a clip", min=0.0),
    Key("clip_fps", 10.0, "frames per second kept for clips (each is JPEG-encoded once)", min=0.5, max=60.0),
    Key("clip_format", "mp4", "clip container: mp4 (mp4v: half the CPU of avi, a fifth of the size) or avi (MJPEG)"),
    Key("clip_days", 7.0, "clips and snapshots older than this are deleted", min=0.0),
    Key("clip_mb", 2000.0, "the clips directory's budget in MB; the oldest files go first", min=1.0),
)
CAMERA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class JsonlEventSink:
    """One `Event.to_json()` per line, flushed; `-` is stdout."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if self.path == "-":
            self._file: IO[str] = sys.stdout
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()  # camera_down/up come from a watcher thread

    def publish(self, event: Event) -> None:
        with self._lock:
            self._file.write(event.to_json() + "\n")
            self._file.flush()

    def publish_counts(self, camera: str, counts: dict[str, Any], epoch: float) -> None:
        pass

    def close(self) -> None:
        if self._file is not sys.stdout:
            self._file.close()


def wants_events(cfg: Mapping[str, Any]) -> bool:
    return any(cfg.get(k) for k in ("events", "mqtt", "webhook", "clips"))


def open_event_outputs(cfg: Mapping[str, Any], stack: ExitStack, name: str | None = None
                       ) -> tuple[list[EventSink], ClipWriter | None]:
    """The sinks and the clip writer `cfg` (EVENT_KEYS) names; each is closed by `stack`. `name`
    (default: `camera=`) names the process's queue files (`mqtt-<name>.sqlite`), one per process."""
    if not CAMERA_NAME.fullmatch(str(cfg["camera"])):
        raise ConfigError(f"camera={cfg['camera']}: a camera name is 1-64 letters, digits, - and _ "
                         "(it names MQTT topics and clip folders)")
    unknown = sorted(set(cfg["clip_on"]) - set(KINDS))
    if unknown:
        raise ConfigError(f"clip_on: unknown event kind '{unknown[0]}'; kinds: {', '.join(KINDS)}")
    queue_dir = Path(os.path.expanduser(cfg["queue_dir"]))
    name = name or cfg["camera"]
    sinks: list[EventSink] = []
    if cfg["events"]:
        sinks.append(JsonlEventSink(cfg["events"]))
    if cfg["mqtt"]:
        from edgecnn.runtime.mqtt import MqttSink

        sinks.append(MqttSink(cfg["mqtt"], queue_dir / f"mqtt-{name}.sqlite", prefix=cfg["mqtt_prefix"],
                              queue_max=cfg["queue_max"], discovery=cfg["mqtt_discovery"] or None))
    if cfg["webhook"]:
        from edgecnn.runtime.webhook import WebhookSink

        sinks.append(WebhookSink(cfg["webhook"], queue_dir / f"webhook-{name}.sqlite", queue_max=cfg["queue_max"]))
    for sink in sinks:
        stack.callback(sink.close)
    writer = None
    if cfg["clips"]:
        writer = ClipWriter(cfg["clips"], cfg["clip_format"], cfg["clip_days"] * 86400, int(cfg["clip_mb"] * 2**20))
        stack.callback(writer.close)
    return sinks, writer


class CameraEvents:
    """One camera: tracks → events → clips → sinks; counts go to the sinks when they change."""

    def __init__(self, camera: str, sinks: Sequence[EventSink], names: Sequence[str] = (), max_age: int = 30,
                 writer: ClipWriter | None = None, cfg: Mapping[str, Any] | None = None):
        self.camera, self.sinks = camera, list(sinks)
        self.builder = EventBuilder(camera, names, max_age)
        self.recorder = None
        if writer is not None:
            cfg = {**EVENT_KEYS.defaults(), **(cfg or {})}  # EVENT_KEYS, resolved by the caller
            self.recorder = ClipRecorder(writer, camera, cfg["clip_pre"], cfg["clip_post"], cfg["clip_fps"],
                                         kinds=tuple(cfg["clip_on"]))
        self.published = 0
        self.cpu_s = 0.0  # this thread's CPU seconds in `frame` (events, JPEG ring, clip triggers, queueing)
        self._counts: str | None = None
        self._last_frame, self._changes = -1, 0
        self._closed = threading.Event()
        self._lock = threading.Lock()  # frames and the watcher thread both send

    def frame(self, image: np.ndarray, index: int, epoch: float, now: float, tracks, counter=None) -> list[Event]:
        """The events of one processed frame (`now`: the counter's clock), sent to every sink."""
        start = time.thread_time()
        self._last_frame = index
        if self.recorder is not None:
            self.recorder.add(image, now)
        events = self.builder.update(index, epoch, tracks, counter)
        if self.recorder is not None:
            events = [self.recorder.trigger(e, now) for e in events]
        self._send(events)
        if counter is not None:
            counts = counter.report()
            key = json.dumps([counts["lines"], {z: v["occupancy"] for z, v in counts["zones"].items()}])
            if key != self._counts:
                self._counts = key
                for sink in self.sinks:
                    sink.publish_counts(self.camera, counts, epoch)
        self.cpu_s += time.thread_time() - start
        return events

    def watch(self, source, every: float = 0.2) -> None:
        """Report `source` going down and coming back: a thread reads its `state` every `every` s
        (a dead camera blocks its reader, so the frame loop cannot notice)."""
        def poll() -> None:
            up = True
            while not self._closed.wait(every) and (state := source.state) != "ended":
                if (state == "up") != up:
                    up = not up
                    self.camera_state(up, time.time())

        threading.Thread(target=poll, name=f"watch:{self.camera}", daemon=True).start()

    def camera_state(self, up: bool, epoch: float) -> Event:
        self._changes += 1
        event = camera_event(self.camera, up, self._last_frame, epoch, self._changes)
        self._send([event])
        return event

    def _send(self, events: list[Event]) -> None:
        with self._lock:
            for event in events:
                for sink in self.sinks:
                    sink.publish(event)
            self.published += len(events)

    def close(self) -> None:
        """Stop watching, finish the clip being recorded (the sinks and writer are closed by their owner)."""
        self._closed.set()
        if self.recorder is not None:
            self.recorder.finish()
