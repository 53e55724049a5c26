"""A live view of the tracking over HTTP: one page, an annotated MJPEG stream, the figures as JSON.

`serve=127.0.0.1:8080` → http://127.0.0.1:8080/ (the page), `/stream.mjpg` (multipart JPEG,
which browsers, VLC and ffmpeg read), `/figures.json` (FPS, stage latencies, tracks, counts).
A site (runtime/site.py) serves its grid instead: `/figures.json` has
`{"cameras": {name: figures}}` and `/site.mjpg` carries every camera's JPEGs in one stream, each
part naming its camera (`X-Camera`; one connection, as browsers allow six per host),
`/stream.mjpg?camera=<name>` one camera's. Nothing else is served. The standard library's ThreadingHTTPServer does it: the device has no
web framework, and one thread per client is what a few viewers of a camera need.

The pipeline never waits for a viewer: while a stream is open the app annotates a frame at most
`fps` times a second (`wants_frame`) and `publish` only swaps a reference to it under a lock. One
encoder thread turns the newest frame into JPEG; each client's thread sends the newest JPEG when
it is free, so a slow or stuck client skips frames (and is dropped after WRITE_TIMEOUT seconds
stuck), never the tracker. Nobody watching costs nothing but the figures, four times a second.

Any bind other than loopback needs a token (`token_file=` or $EDGECNN_TOKEN, never the command
line, where `ps` shows it); a request then carries `Authorization: Bearer <token>` or `?token=`,
and one without it gets 401 and nothing else.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edgecnn.config import ConfigError
from edgecnn.runtime.web_page import PAGE, SITE_PAGE

LOG = logging.getLogger("edgecnn.web")
TOKEN_ENV = "EDGECNN_TOKEN"
WRITE_TIMEOUT = 10.0  # seconds a client may block one send before it is dropped
FIGURES_EVERY = 0.25  # seconds between refreshes of the figures (the page polls twice a second)
BOUNDARY = "edgecnn-frame"
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


def parse_bind(spec: str | int) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or a bare port (on 127.0.0.1) → (host, port)."""
    text = str(spec).strip()
    host, _, port = text.rpartition(":") if ":" in text else ("127.0.0.1", "", text)
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"serve={spec!r}: expected host:port (e.g. 127.0.0.1:8080) or a port")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def read_token(token_file: str | None) -> str | None:
    """The token from `token_file` (first line) or $EDGECNN_TOKEN; None when neither is set."""
    if token_file:
        path = Path(token_file)
        if not path.is_file():
            raise FileNotFoundError(f"token_file not found: {path}")
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ConfigError(f"token_file={path} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def check_bind(host: str, token: str | None) -> None:
    """Loopback is open to this machine's users; any other address needs a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"serve={host}: a live view reachable from other machines needs a token: put one in a "
                          f"file and give token_file=, or set ${TOKEN_ENV} (never on the command line)")


@contextmanager
def open_live_view(cfg: Mapping[str, Any], cameras: list[str] | None = None) -> Iterator[LiveView]:
    """The live view the app's keys (serve, token_file, serve_fps, serve_quality) ask for; with
    `cameras`, the site's page of those cameras."""
    host, port = parse_bind(cfg["serve"])
    view = LiveView(host, port, read_token(cfg["token_file"]), fps=cfg["serve_fps"], quality=cfg["serve_quality"],
                    cameras=cameras)
    try:
        yield view
    finally:
        view.close()



def start_multipart(handler: BaseHTTPRequestHandler) -> None:
    """The headers of an MJPEG stream (multipart/x-mixed-replace), writes bounded by WRITE_TIMEOUT."""
    handler.connection.settimeout(WRITE_TIMEOUT)
    handler.send_response(HTTPStatus.OK)
    handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()


def jpeg_part(jpeg: bytes, captured: float, extra_headers: str = "") -> bytes:
    """One part of that stream: the JPEG, its capture time (`X-Captured`) and `extra_headers`."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            f"X-Captured: {captured:.4f}\r\n{extra_headers}\r\n".encode() + jpeg + b"\r\n")

class Channel:
    """One camera's frames on the page: the newest annotated frame, its JPEG, its figures and its
    encoder thread. The app's one camera is channel ""; a site's cameras are named. A view's
    channels share one lock and one "new JPEG" condition, so a client can wait on them all."""

    def __init__(self, name: str, period: float, quality: int, lock: threading.Lock, new_jpeg: threading.Condition):
        self.name, self.period, self.quality = name, period, quality
        self._lock = lock  # the view's
        self._new_frame = threading.Condition(lock)  # wakes the encoder
        self._new_jpeg = new_jpeg  # wakes the clients (the view's, on the same lock)
        self._frame: np.ndarray | None = None  # newest annotated frame (never copied: the app makes a new one each time)
        self._frame_seq = 0
        self._captured = 0.0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._jpeg_captured = 0.0
        self._figures: dict[str, Any] = {}
        self._figures_at = 0.0
        self._published_at = 0.0
        self.streams = 0  # open stream connections
        self.sent = 0  # frames sent, all clients together
        self._stopped = False
        self._thread = threading.Thread(target=self._encode, name=f"live-view-jpeg:{name}", daemon=True)
        self._thread.start()

    def wants_frame(self) -> bool:
        return bool(self.streams) and time.monotonic() - self._published_at >= self.period

    def publish(self, image: np.ndarray | None, captured: float, figures: Callable[[], dict]) -> None:
        now = time.monotonic()
        refresh = now - self._figures_at >= FIGURES_EVERY
        values = figures() if refresh else None
        with self._lock:
            if refresh:
                self._figures, self._figures_at = values, now
            if image is not None:
                self._frame, self._captured, self._frame_seq = image, captured, self._frame_seq + 1
                self._published_at = now
                self._new_frame.notify()

    def figures(self) -> dict[str, Any]:
        with self._lock:
            return {**self._figures, "viewers": self.streams}

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._new_frame.notify_all()
            self._new_jpeg.notify_all()

    def _encode(self) -> None:
        """Newest frame → JPEG, at most once per period, while a stream is open."""
        done_seq = 0
        while True:
            with self._lock:
                self._new_frame.wait_for(lambda: self._stopped or (self.streams and self._frame_seq != done_seq))  # noqa: B023 (waited on here)
                if self._stopped:
                    return
                image, done_seq, captured = self._frame, self._frame_seq, self._captured
            started = time.monotonic()
            _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])  # releases the GIL
            with self._lock:
                self._jpeg, self._jpeg_seq, self._jpeg_captured = jpeg.tobytes(), self._jpeg_seq + 1, captured
                self._new_jpeg.notify_all()
            time.sleep(max(0.0, started + self.period - time.monotonic()))

    def next_jpeg(self, after: int) -> tuple[bytes, int, float] | None:
        """The newest JPEG newer than sequence `after` (blocks until there is one); None when stopped."""
        with self._lock:
            self._new_jpeg.wait_for(lambda: self._stopped or self._jpeg_seq > after)
            return None if self._stopped else (self._jpeg, self._jpeg_seq, self._jpeg_captured)

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        start_multipart(handler)
        with self._lock:
            self.streams += 1
            self._new_frame.notify()
            seq = self._jpeg_seq  # what was encoded before this client came may be old: wait for the next
        try:
            while (item := self.next_jpeg(seq)) is not None:
                jpeg, seq, captured = item
                handler.wfile.write(jpeg_part(jpeg, captured))
                handler.wfile.flush()
                self.sent += 1
        except (OSError, socket.timeout):
            pass  # the client went away or stalled: its thread ends, the pipeline never noticed
        finally:
            with self._lock:
                self.streams -= 1


class LiveView:
    """The HTTP server and one `Channel` per camera; `publish(image, captured, figures)` once per
    frame. With `cameras` (a site), the page is the site's grid and `channel=` names the camera."""

    def __init__(self, host: str, port: int, token: str | None = None, fps: float = 10.0, quality: int = 75,
                 cameras: list[str] | None = None):
        check_bind(host, token)
        self.token, self.site = token, cameras is not None
        lock = threading.Lock()
        self._new_jpeg = threading.Condition(lock)
        self.channels = {name: Channel(name, 1.0 / fps, quality, lock, self._new_jpeg)
                         for name in (cameras if self.site else [""])}
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        try:
            self.server = server_class((host, port), _handler(self))
        except OSError as err:
            self.close_channels()
            raise ConfigError(f"serve={host}:{port}: cannot listen there ({err.strerror})") from None
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-view-http", daemon=True)
        self._thread.start()
        LOG.info("live view on %s%s", self.url, "" if token is None else " (token required)")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def streams(self) -> int:
        return sum(c.streams for c in self.channels.values())

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.channels.values())

    def wants_frame(self, channel: str = "") -> bool:
        """A stream of `channel` is open and its last frame was published at least a period ago:
        the app annotates only the frames that will be sent."""
        return self.channels[channel].wants_frame()

    def publish(self, image: np.ndarray | None, captured: float, figures: Callable[[], dict], channel: str = "") -> None:
        """The newest annotated frame (captured at Unix time `captured`; None: only the figures);
        `figures()` is called at most every FIGURES_EVERY seconds."""
        self.channels[channel].publish(image, captured, figures)

    def figures(self) -> dict[str, Any]:
        """The app's figures, or a site's: {"cameras": {name: figures}}; with the time and viewers."""
        if not self.site:
            return {**self.channels[""].figures(), "time": time.time()}
        return {"cameras": {name: c.figures() for name, c in self.channels.items()}, "time": time.time(),
                "viewers": self.streams}

    def stream_site(self, handler: BaseHTTPRequestHandler) -> None:
        """Every camera's newest JPEGs in one multipart stream, each part with its `X-Camera`."""
        start_multipart(handler)
        channels = list(self.channels.values())
        with self._new_jpeg:
            for channel in channels:
                channel.streams += 1
                channel._new_frame.notify()
            seqs = {c.name: c._jpeg_seq for c in channels}
        try:
            while True:
                with self._new_jpeg:
                    self._new_jpeg.wait_for(lambda: channels[0]._stopped or any(c._jpeg_seq > seqs[c.name] for c in channels))  # noqa: B023
                    if channels[0]._stopped:
                        return
                    fresh = [(c, c._jpeg, c._jpeg_captured) for c in channels if c._jpeg_seq > seqs[c.name]]
                    seqs.update({c.name: c._jpeg_seq for c, _, _ in fresh})
                for channel, jpeg, captured in fresh:
                    handler.wfile.write(jpeg_part(jpeg, captured, f"X-Camera: {channel.name}\r\n"))
                    channel.sent += 1
                handler.wfile.flush()
        except (OSError, socket.timeout):
            pass  # as in Channel.stream: a slow client skips frames and never blocks the pipeline
        finally:
            with self._new_jpeg:
                for channel in channels:
                    channel.streams -= 1

    def close_channels(self) -> None:
        for channel in self.channels.values():
            channel.stop()

    def close(self) -> None:
        self.close_channels()
        self.server.shutdown()
        self.server.server_close()

    def authorized(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        header = handler.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler(view: LiveView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgecnn"
        sys_version = ""

        def parse_request(self) -> bool:
            """The token check, before any method or path is looked at: whatever a request
            without the token asks for (an unknown method too), it gets 401 and nothing else."""
            if not super().parse_request():
                return False
            if view.authorized(self, parse_qs(urlsplit(self.path).query)):
                return True
            self._send(HTTPStatus.UNAUTHORIZED, b"401 unauthorized\n", "text/plain; charset=utf-8")
            return False

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path, camera = parts.path, (parse_qs(parts.query).get("camera") or [""])[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, (SITE_PAGE if view.site else PAGE).encode(), "text/html; charset=utf-8")
            elif path == "/figures.json":
                self._send(HTTPStatus.OK, json.dumps(view.figures()).encode(), "application/json")
            elif path == "/stream.mjpg" and camera in view.channels:
                view.channels[camera].stream(self)
            elif path == "/site.mjpg" and view.site:
                view.stream_site(self)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"404 not found\n", "text/plain; charset=utf-8")

        def refuse(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"405 method not allowed\n", "text/plain; charset=utf-8")

        do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            # the request line carries ?token= when the page was opened with one: never logged
            LOG.debug("%s %s", self.address_string(), TOKEN_IN_QUERY.sub(r"\1***", format % args))

    return Handler
