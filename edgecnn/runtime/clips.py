"""Clips and snapshots around events: pre- and post-roll from a ring buffer of JPEG frames.

Each camera's `ClipRecorder` keeps the last `pre_s` seconds as JPEG bytes (encoded once, at most
`fps` frames a second, so an idle camera costs one JPEG encoding per kept frame and nothing more).
An event that triggers a recording writes the current frame as a JPEG snapshot at once and opens a
clip: the ring's frames, then every frame until `post_s` after the last triggering event (events
during a clip extend it, up to `max_s`). The finished clip is handed to the shared `ClipWriter`
thread, which decodes the JPEGs into a `cv2.VideoWriter` (mp4v in MP4 by default: on x86 it took
half the CPU of MJPEG in AVI and a fifth of the size, benchmarks/events.py) and renames the file
into place (atomic: a clip or snapshot is either complete or absent).

The event names both files (`clip`, `snapshot`: paths relative to the clips directory,
`<camera>/<UTC time>-<event id>.mp4|.avi|.jpg`); the clip appears there once its post-roll has passed.
Retention runs around every clip: files older than `max_age_s` go, then the oldest until the
directory is under `max_bytes` and the disk has room for the clip. A write that fails (a disk full
of other files) is logged and counted in `failed`, never fatal. Clips and snapshots waiting for the
writer hold at most `max_pending_mb` of JPEGs (a writer slower than the cameras, e.g. a slow SD
card, would otherwise queue without bound): beyond it new ones are dropped, logged and counted in
`dropped`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgecnn.config import ConfigError
from edgecnn.fileio import atomic_path, atomic_write_bytes
from edgecnn.runtime.events import Event

LOG = logging.getLogger("edgecnn.clips")
FORMATS = {"avi": "MJPG", "mp4": "mp4v"}
MEDIA = (".avi", ".mp4", ".jpg")
CLIP_SLACK = 1.25  # a clip's file size over its JPEG frames' (MJPEG re-encodes at a similar quality)


def check_writable(directory: str | os.PathLike, key: str = "clips") -> Path:
    """The clips directory, made if missing; a clear error naming `key` when it cannot be written."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        raise ConfigError(f"{key}={path}: the clips directory is not writable ({err.strerror or err})") from None
    return path


@dataclass
class Clip:
    path: Path
    ends: float  # clock time at which the post-roll is over
    frames: list[tuple[float, bytes]] = field(default_factory=list)


class ClipWriter:
    """One thread that writes snapshots and finished clips and applies retention to the whole directory."""

    def __init__(self, directory: str | os.PathLike, fmt: str = "mp4", max_age_s: float = 7 * 86400,
                 max_bytes: int = 2 << 30, key: str = "clips", max_pending_mb: float = 64.0):
        if fmt not in FORMATS:
            raise ConfigError(f"clip_format={fmt}: use one of {', '.join(FORMATS)}")
        self.directory = check_writable(directory, key)
        self.fmt, self.max_age_s, self.max_bytes = fmt, max_age_s, max_bytes
        self.written = self.failed = self.deleted = self.dropped = 0
        self.pending_bytes, self.max_pending = 0, int(max_pending_mb * 2**20)  # JPEG bytes queued for the writer
        self._pending_lock = threading.Lock()
        self.busy_s = 0.0  # thread CPU seconds spent writing and deleting
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="clip-writer", daemon=True)
        self._thread.start()

    def submit(self, clip: Clip) -> None:
        self._enqueue(clip, clip.path, sum(len(jpeg) for _, jpeg in clip.frames))

    def snapshot(self, path: Path, jpeg: bytes) -> None:
        self._enqueue((path, jpeg), path, len(jpeg))

    def _enqueue(self, item, path: Path, size: int) -> None:
        with self._pending_lock:
            if self.pending_bytes + size > self.max_pending:
                self.dropped += 1
                LOG.error("%s not written (%d dropped): %.0f MB already wait for the clip writer", path,
                          self.dropped, self.pending_bytes / 2**20)
                return
            self.pending_bytes += size
        self._queue.put((item, size))

    def _done(self, size: int) -> None:
        with self._pending_lock:
            self.pending_bytes -= size

    def _snapshot(self, path: Path, jpeg: bytes) -> None:
        try:
            atomic_write_bytes(path, jpeg)
        except OSError as err:
            self.failed += 1
            LOG.error("snapshot %s not written: %s", path, err.strerror or err)

    def _run(self) -> None:
        while (queued := self._queue.get()) is not None:
            item, size = queued
            start = time.thread_time()
            if isinstance(item, Clip):
                self._write_clip(item)
            else:
                self._snapshot(*item)
            self._done(size)
            self.busy_s += time.thread_time() - start

    def _write_clip(self, clip: Clip) -> None:
        need = CLIP_SLACK * sum(len(jpeg) for _, jpeg in clip.frames) + (1 << 16)
        try:
            if not self.retain(need):
                raise OSError(f"the disk is full: {need / 2**20:.1f} MB needed, too little left after retention")
            self._write(clip)
            self.written += 1
        except (OSError, cv2.error, RuntimeError) as err:
            self.failed += 1
            LOG.error("clip %s not written (%d failed): %s", clip.path, self.failed,
                      getattr(err, "strerror", None) or err)
        self.retain()

    def _write(self, clip: Clip) -> None:
        first = cv2.imdecode(np.frombuffer(clip.frames[0][1], np.uint8), cv2.IMREAD_COLOR)
        span = clip.frames[-1][0] - clip.frames[0][0]
        fps = min(max((len(clip.frames) - 1) / span, 1.0), 60.0) if span > 0 else 10.0
        with atomic_path(clip.path, suffix=clip.path.suffix) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*FORMATS[self.fmt]), fps,
                                     first.shape[1::-1])
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {self.fmt} here")
            try:
                writer.write(first)
                for _, jpeg in clip.frames[1:]:
                    writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
            finally:
                writer.release()
            if not tmp.stat().st_size:
                raise OSError(f"{clip.path}: nothing was written (is the disk full?)")

    def retain(self, need: int = 0) -> bool:
        """Delete files past `max_age_s`, then the oldest until the directory fits `max_bytes` and
        the disk has `need` bytes free (a disk that fills up acts as a smaller budget); True when
        it has them."""
        files = []
        for path in self.directory.rglob("*"):
            if path.suffix in MEDIA and not path.name.startswith("."):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        total, cutoff = sum(size for _, size, _ in files), time.time() - self.max_age_s
        free = shutil.disk_usage(self.directory).free
        for mtime, size, path in files:
            if mtime >= cutoff and total <= self.max_bytes and free >= need:
                break
            path.unlink(missing_ok=True)
            total, free = total - size, free + size
            self.deleted += 1
        return free >= need

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)


class ClipRecorder:
    """One camera's ring buffer and the clip being recorded; `add` every frame, `trigger` on events."""

    def __init__(self, writer: ClipWriter, camera: str, pre_s: float = 3.0, post_s: float = 5.0, fps: float = 10.0,
                 max_s: float = 60.0, quality: int = 80, kinds: tuple[str, ...] = ("line_cross", "zone_enter", "dwell")):
        self.writer, self.camera, self.kinds = writer, camera, set(kinds)
        self.pre_s, self.post_s, self.period, self.max_s = pre_s, post_s, 1.0 / fps, max_s
        self.params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.ring: deque[tuple[float, bytes]] = deque()
        self.clip: Clip | None = None
        self.encode_s = 0.0  # thread CPU seconds spent encoding JPEGs

    def add(self, image: np.ndarray, now: float) -> None:
        """Keep `image` (a BGR frame at clock time `now`) if it is due at the clip frame rate."""
        if self.ring and now - self.ring[-1][0] < self.period * 0.999:
            return
        start = time.thread_time()
        ok, jpeg = cv2.imencode(".jpg", image, self.params)
        self.encode_s += time.thread_time() - start
        item = (now, jpeg.tobytes())
        self.ring.append(item)
        while now - self.ring[0][0] > self.pre_s:
            self.ring.popleft()
        if self.clip is not None:
            self.clip.frames.append(item)
            if now >= self.clip.ends or now - self.clip.frames[0][0] >= self.max_s:
                self.finish()

    def trigger(self, event: Event, now: float) -> Event:
        """`event` with its snapshot (and, for the `kinds` that record, clip) named; starts or extends the clip."""
        if event.kind not in self.kinds or not self.ring:
            return event
        stamp = dt.datetime.fromtimestamp(event.epoch, dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        stem = Path(self.camera) / f"{stamp}-{event.id}"
        self.writer.snapshot(self.writer.directory / stem.with_suffix(".jpg"), self.ring[-1][1])
        if self.clip is None:
            self.clip = Clip(self.writer.directory / stem.with_suffix(f".{self.writer.fmt}"), now + self.post_s,
                             list(self.ring))
        self.clip.ends = max(self.clip.ends, now + self.post_s)
        return dataclasses.replace(event, clip=self.clip.path.relative_to(self.writer.directory).as_posix(),
                                   snapshot=stem.with_suffix(".jpg").as_posix())

    def finish(self) -> None:
        """Hand the clip being recorded to the writer (at its post-roll's end, or at close)."""
        if self.clip is not None:
            self.writer.submit(self.clip)
            self.clip = None
