"""A real MJPEG (multipart/x-mixed-replace) HTTP server on 127.0.0.1, as IP cameras serve them.

`frame(connection, i)` gives the BGR image to send (or its JPEG bytes, to spare the encoding
when measuring the receiving side); the first connection drops (the server
closes it) after `drop_after` frames, later ones stream until `stop()`; a new server given the
stopped one's `port` is that camera back. Used by the source and site tests and
benchmarks/stream_fps.py. `parts(reply)` reads such a stream (the live view's, in its test and
benchmark/live_view.py).
"""

from __future__ import annotations

import http.server
import threading
import time
from typing import BinaryIO, Callable, Iterator

import cv2
import numpy as np


class MjpegServer:
    def __init__(self, frame: Callable[[int, int], np.ndarray | bytes], drop_after: int | None = None, fps: float = 30.0,
                 quality: int = 80, port: int = 0):
        self.connections = 0
        self.sent = 0
        self.stopped = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.connections += 1
                conn = server.connections
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i, next_at = 0, time.monotonic()
                try:
                    while not server.stopped.is_set() and (conn > 1 or drop_after is None or i < drop_after):
                        data = frame(conn, i)
                        if not isinstance(data, bytes):
                            data = cv2.imencode(".jpg", data, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n%b\r\n" % (len(data), data))
                        server.sent += 1
                        i += 1
                        next_at += 1 / fps
                        time.sleep(max(0.0, next_at - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)  # port: restart a stopped one
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def parts(stream: BinaryIO) -> Iterator[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/x-mixed-replace body (an HTTP reply's `fp`): headers (lower-case
    names) and payload, until the stream ends."""
    while line := stream.readline():
        if not line.strip():
            continue
        if not line.startswith(b"--"):
            raise ValueError(f"expected a multipart boundary, got {line[:40]!r}")
        headers = {}
        while (line := stream.readline().strip()):
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        yield headers, stream.read(int(headers["content-length"]))
