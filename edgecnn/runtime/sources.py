"""Video sources: webcams, files, RTSP/HTTP streams, GStreamer pipelines, the Pi camera.

`open_source(spec)` returns a `Source` that yields `Frame`s (BGR image, index, capture time).
Live sources are read by a thread that keeps only the newest frame, so latency never grows
when inference is slower than the camera; a stream that drops is reopened with exponential
backoff. Files are read frame by frame (prefetched, never dropped).

Accepted specs:
- `0`, `"0"`, `/dev/video0`: a V4L2 webcam.
- a video file path.
- `rtsp://…`, `http(s)://…` (MJPEG or anything FFmpeg reads), `rtmp://…`, `udp://…`.
- a GStreamer pipeline ending in `appsink` (contains `!`), read with `cv2.CAP_GSTREAMER`.
- `csi` or `csi:<sensor-id>`: a Jetson CSI camera through `nvarguscamerasrc` (see
  `csi_pipeline`); needs the system OpenCV that JetPack ships (built with GStreamer).
- `picam`: the Raspberry Pi camera through picamera2 (installed with apt, imported only here).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np

LOG = logging.getLogger("edgecnn.sources")

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
OPEN_TIMEOUT_MS = 5000  # an unreachable camera or stream fails in seconds, not minutes
BACKOFF_START_S, BACKOFF_MAX_S = 0.25, 8.0


class SourceError(RuntimeError):
    """A source that cannot be opened, or a live source lost for longer than allowed."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H x W x 3 uint8, BGR
    index: int  # frames captured from the source so far (live sources skip the dropped ones)
    timestamp: float  # time.monotonic() when the frame was captured

    @property
    def captured_at(self) -> float:
        """Unix time of the capture (`timestamp` is monotonic: for durations, not for records)."""
        return time.time() - (time.monotonic() - self.timestamp)


class Capture(Protocol):
    """What a source reads from: `cv2.VideoCapture` or a wrapper with the same two methods."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def csi_pipeline(sensor_id: int = 0, capture: tuple[int, int, int] = (1280, 720, 30), output: tuple[int, int] = (640, 360)) -> str:
    """The GStreamer pipeline for a Jetson CSI camera (IMX219/IMX477 through Argus).

    The sensor runs at `capture` (width, height, fps); nvvidconv scales to `output` in hardware
    and the appsink keeps only the newest buffer, so capture latency stays one frame.
    """
    w, h, fps = capture
    ow, oh = output
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={w}, height={h}, framerate={fps}/1, format=NV12 ! "
        f"nvvidconv ! video/x-raw, width={ow}, height={oh}, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


class Source:
    """Iterate over frames; `read()` returns None at the end. Use as a context manager.

    Several sources served by one thread (runtime/site.py) share one `ready` event, which each
    sets when it has a new frame, and take frames with `poll()`, which never waits.
    """

    live = False

    def __init__(self, name: str, fps: float | None, ready: threading.Event | None = None):
        self.name = name
        self.fps = fps  # the rate the source reports, None when unknown
        self.dropped = 0  # live frames replaced by a newer one before anyone read them
        self.reconnects = 0
        self.ready = ready

    @property
    def state(self) -> str:
        """"up", "reconnecting" (a live source between a drop and its reopening) or "ended"."""
        raise NotImplementedError

    def read(self) -> Frame | None:
        raise NotImplementedError

    def poll(self) -> Frame | None:
        """The next frame if one is waiting, else None at once (`state` tells an ended source)."""
        raise NotImplementedError

    def _signal(self) -> None:
        if self.ready is not None:
            self.ready.set()

    def close(self) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileSource(Source):
    """Every frame of a file, in order; a thread decodes a few frames ahead of the consumer.

    A frame's timestamp is when the consumer takes it: a file has no capture time, and the
    time a decoded frame waits in the prefetch queue is not latency a camera would see.
    """

    def __init__(self, name: str, capture: Capture, fps: float | None, prefetch: int = 4,
                 ready: threading.Event | None = None):
        super().__init__(name, fps, ready)
        self._capture = capture
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, name=f"source:{name}", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                ok, image = self._capture.read()
                if not ok or image is None:
                    break
                self._put(Frame(image, index, time.monotonic()))
                index += 1
        finally:
            self._capture.release()
            self._put(None)

    def _put(self, item: Frame | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                self._signal()
                return
            except queue.Full:
                continue

    @property
    def state(self) -> str:
        return "ended" if self._stop.is_set() else "up"

    def read(self) -> Frame | None:
        if self._stop.is_set():
            return None
        return self._taken(self._queue.get())

    def poll(self) -> Frame | None:
        if self._stop.is_set():
            return None
        try:
            return self._taken(self._queue.get_nowait())
        except queue.Empty:
            return None

    def _taken(self, frame: Frame | None) -> Frame | None:
        if frame is None:
            self._stop.set()
            return None
        return replace(frame, timestamp=time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class LiveSource(Source):
    """The newest frame of a camera or stream; reopens a dropped stream with exponential backoff.

    `reconnect_timeout` (seconds, 0 = forever) bounds how long a dropped stream may stay down
    before `read()` raises SourceError; under systemd the service then restarts. Without a
    `capture` (the camera was down when the app started) it starts by reconnecting.
    """

    live = True

    def __init__(self, name: str, opener: Callable[[], Capture], capture: Capture | None, fps: float | None,
                 reconnect: bool = True, reconnect_timeout: float = 60.0, ready: threading.Event | None = None):
        super().__init__(name, fps, ready)
        self._open = opener
        self._capture = capture
        self._reconnect = reconnect
        self._reconnect_timeout = reconnect_timeout
        self._latest: Frame | None = None
        self._ended = False
        self._reconnecting = capture is None
        self._error: SourceError | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._grab, name=f"source:{name}", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        index = 0
        try:
            if self._capture is None and not self._reopen(index):
                return
            while not self._stop.is_set():
                ok, image = self._capture.read()
                if not ok or image is None:
                    self._capture.release()
                    if not self._reconnect or not self._reopen(index):
                        break
                    continue
                frame = Frame(image, index, time.monotonic())
                index += 1
                with self._cond:
                    self.dropped += self._latest is not None
                    self._latest = frame
                    self._cond.notify_all()
                self._signal()
        finally:
            if self._capture is not None:
                self._capture.release()
            with self._cond:
                self._ended = True
                self._cond.notify_all()
            self._signal()

    def _reopen(self, frames_so_far: int) -> bool:
        """Try to reopen until it works, the timeout passes or the source is closed."""
        down_since = time.monotonic()
        delay, attempt = BACKOFF_START_S, 0
        self._reconnecting = True
        self._signal()  # whoever serves this source sees it go down now, not at its next frame
        if self._capture is not None:
            LOG.warning("%s dropped after %d frames; reconnecting", self.name, frames_so_far)
        while not self._stop.is_set():
            down = time.monotonic() - down_since
            if self._reconnect_timeout and down > self._reconnect_timeout:
                self._error = SourceError(
                    f"{self.name} lost: no reconnect within {self._reconnect_timeout:g} s ({attempt} attempts)"
                )
                LOG.error("%s", self._error)
                return False
            attempt += 1
            LOG.warning("%s: reconnect attempt %d in %.2f s", self.name, attempt, delay)
            if self._stop.wait(delay):
                return False
            try:
                self._capture = self._open()
            except SourceError as err:
                LOG.warning("%s: attempt %d failed: %s", self.name, attempt, err)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.reconnects += 1
            self._reconnecting = False
            LOG.warning("%s reconnected after %.2f s (attempt %d)", self.name, time.monotonic() - down_since, attempt)
            return True
        return False

    @property
    def state(self) -> str:
        return "ended" if self._ended else "reconnecting" if self._reconnecting else "up"

    def read(self) -> Frame | None:
        """Wait for a frame newer than the last one returned; None once the source has ended."""
        with self._cond:
            while self._latest is None and not self._ended:
                self._cond.wait()
        return self.poll()

    def poll(self) -> Frame | None:
        with self._cond:
            frame, self._latest = self._latest, None
        if frame is None and self._ended and self._error is not None:
            raise self._error
        return frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)


class PacedCapture:
    """A file played at its own frame rate, like a camera would deliver it (for live-like tests)."""

    def __init__(self, capture: Capture, fps: float):
        self._capture = capture
        self._period = 1.0 / fps
        self._next = time.monotonic()

    def read(self) -> tuple[bool, np.ndarray | None]:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next, time.monotonic()) + self._period
        return self._capture.read()

    def release(self) -> None:
        self._capture.release()


class PicameraCapture:
    """The Raspberry Pi camera through picamera2, as BGR frames ("RGB888" is B, G, R in memory)."""

    def __init__(self, size: tuple[int, int] = (640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError as err:
            raise SourceError(
                "source 'picam' needs picamera2: `sudo apt install python3-picamera2` and a venv made with "
                f"--system-site-packages ({err})"
            ) from None
        try:
            self._camera = Picamera2()
            self._camera.configure(self._camera.create_video_configuration(main={"size": size, "format": "RGB888"}))
            self._camera.start()
        except (RuntimeError, IndexError) as err:
            raise SourceError(f"source 'picam' could not start the Pi camera: {err}") from None

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            return True, self._camera.capture_array("main")
        except RuntimeError as err:
            LOG.warning("picam read failed: %s", err)
            return False, None

    def release(self) -> None:
        self._camera.close()


def _has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    return any(line.strip().startswith("GStreamer:") and "YES" in line for line in info.splitlines())


def _video_capture(target: str | int, api: int, name: str) -> cv2.VideoCapture:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
    capture = cv2.VideoCapture(target, api, params)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open {name}")
    return capture


def _webcam(target: int | str, api: int, name: str) -> cv2.VideoCapture:
    capture = _video_capture(target, api, name)
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver queue would add frames of latency
    return capture


def _camera_index(spec: str | int) -> int | None:
    if isinstance(spec, int):
        return spec
    text = str(spec).strip()
    return int(text) if text.isdigit() else None


def describe(spec: str | int) -> str:
    """The kind of source a spec names: webcam, picam, gstreamer, stream or file."""
    text = str(spec).strip()
    if _camera_index(spec) is not None or text.startswith("/dev/video"):
        return "webcam"
    if text == "picam":
        return "picam"
    if "!" in text or text == "csi" or text.startswith("csi:"):
        return "gstreamer"
    if text.lower().startswith(STREAM_SCHEMES):
        return "stream"
    return "file"


def without_credentials(text: str) -> str:
    """`rtsp://user:pass@cam/…` → `rtsp://***@cam/…`: a source's name goes to logs, errors,
    reports and the live view's page."""
    return re.sub(r"//[^/@\s]+@", "//***@", text)


def open_source(spec: str | int, *, live: bool | None = None, reconnect_timeout: float = 60.0,
                ready: threading.Event | None = None, wait_if_down: bool = False) -> Source:
    """Open `spec` (see the module docstring); a source that cannot open raises SourceError naming it.

    `live=True` on a file plays it at its own frame rate through the newest-frame-only reader,
    as a camera would deliver it; `live=False` on a stream reads every frame in order.
    `wait_if_down=True`: a camera or stream that cannot open yet starts reconnecting instead (a
    site keeps watching its other cameras); `ready` is set whenever the source has a frame.
    """
    kind = describe(spec)
    text = str(spec).strip()
    name = f"{kind} source {without_credentials(text)!r}"
    if kind == "file":
        path = Path(text[len("file://"):] if text.startswith("file://") else text)
        if not path.is_file():
            raise SourceError(f"cannot open {name}: no such file {path}")
        opener = lambda: _video_capture(str(path), cv2.CAP_FFMPEG, name)  # noqa: E731
    elif kind == "webcam":
        index = _camera_index(spec)
        target = index if index is not None else text
        api = cv2.CAP_V4L2 if os.name == "posix" and Path("/dev").is_dir() else cv2.CAP_ANY
        opener = lambda: _webcam(target, api, name)  # noqa: E731
    elif kind == "picam":
        opener = PicameraCapture
    elif kind == "gstreamer":
        if not _has_gstreamer():
            raise SourceError(
                f"cannot open {name}: this OpenCV was built without GStreamer (pip wheels are); "
                "on a Jetson use JetPack's system OpenCV (python3-opencv) in a venv with --system-site-packages"
            )
        pipeline = text
        if "!" not in text:  # csi or csi:<sensor-id>
            sensor = text.partition(":")[2] or "0"
            if not sensor.isdigit():
                raise SourceError(f"cannot open {name}: use csi or csi:<sensor id>, e.g. csi:1")
            pipeline = csi_pipeline(int(sensor))
        opener = lambda: _video_capture(pipeline, cv2.CAP_GSTREAMER, name)  # noqa: E731
    else:
        opener = lambda: _video_capture(text, cv2.CAP_FFMPEG, name)  # noqa: E731

    is_live = kind != "file" if live is None else live
    try:
        capture = opener()
    except SourceError as err:
        if not (wait_if_down and is_live and kind != "file"):
            raise
        LOG.warning("%s; reconnecting", err)
        return LiveSource(name, opener, None, None, reconnect_timeout=reconnect_timeout, ready=ready)
    fps = capture.get(cv2.CAP_PROP_FPS) if isinstance(capture, cv2.VideoCapture) else None
    fps = fps if fps and 0 < fps < 1000 else None
    if not is_live:
        return FileSource(name, capture, fps, ready=ready)
    if kind == "file":
        paced = PacedCapture(capture, fps or 30.0)
        return LiveSource(name, opener, paced, fps, reconnect=False, ready=ready)
    return LiveSource(name, opener, capture, fps, reconnect=True, reconnect_timeout=reconnect_timeout, ready=ready)
