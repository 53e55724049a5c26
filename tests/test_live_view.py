"""The live view: page, MJPEG stream and figures over real HTTP on 127.0.0.1, the token rule, and
the page in headless Chromium against a running `edgecnn track`."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.config import ConfigError
from edgecnn.runtime.sources import without_credentials
from edgecnn.runtime.web import LiveView, check_bind, parse_bind, read_token
from browser import DevTools, find_chromium
from mjpeg_server import parts as mjpeg_parts

ROOT = Path(__file__).resolve().parents[1]


def frame(i: int) -> np.ndarray:
    image = np.full((120, 160, 3), 40, np.uint8)
    cv2.rectangle(image, (5 + 3 * (i % 40), 30), (35 + 3 * (i % 40), 90), (0, 200, 255), -1)
    return image


class Publisher:
    """Publishes a moving square at `fps` from a thread, as the app's loop would, timing each call."""

    def __init__(self, view: LiveView, fps: float = 60.0):
        self.view, self.period, self.calls = view, 1.0 / fps, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            start = time.perf_counter()
            self.view.publish(frame(i), time.time(), lambda: {"frames": i, "fps": 60.0})  # noqa: B023 (called inside publish)
            self.calls.append(time.perf_counter() - start)
            i += 1
            time.sleep(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def view():
    live = LiveView("127.0.0.1", 0, fps=30)
    publisher = Publisher(live)
    yield live
    publisher.stop()
    live.close()


def get(view: LiveView, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(view.host, view.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    return reply.status, body


def read_parts(view: LiveView, n: int, path: str = "/stream.mjpg") -> list[tuple[np.ndarray, float]]:
    """The first `n` JPEG parts of the stream, decoded, with their capture times."""
    conn = http.client.HTTPConnection(view.host, view.port, timeout=10)
    conn.request("GET", path)
    reply = conn.getresponse()
    assert reply.status == 200 and reply.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    parts = []
    for headers, jpeg in mjpeg_parts(reply.fp):
        parts.append((cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), float(headers["x-captured"])))
        if len(parts) == n:
            break
    assert len(parts) == n, "the stream ended early"
    conn.close()
    return parts


def test_page_figures_and_stream(view):
    status, page = get(view, "/")
    assert status == 200 and b"<canvas id=\"video\"" in page
    assert b"http://" not in page and b"https://" not in page and b"<link" not in page  # self-contained
    status, body = get(view, "/figures.json")
    figures = json.loads(body)
    assert status == 200 and figures["fps"] == 60.0 and figures["frames"] >= 0 and abs(figures["time"] - time.time()) < 5
    parts = read_parts(view, 6)
    images = [image for image, _ in parts]
    assert all(image.shape == (120, 160, 3) for image in images)
    assert any(np.abs(a.astype(int) - b).mean() > 1 for a, b in zip(images, images[1:]))  # frames move
    assert all(0 <= time.time() - captured < 5 for _, captured in parts)


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/index.php", "/stream.mjpg/x", "/%2e%2e/etc/passwd",
                                  "/figures.json/../../etc/passwd"])
def test_nothing_outside_the_page_and_its_endpoints(view, path):
    status, body = get(view, path)
    assert status == 404 and b"root:" not in body


def test_several_clients_and_a_stuck_one_never_slow_the_pipeline(view):
    stuck = socket.create_connection((view.host, view.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
    time.sleep(1.0)  # the stuck client's socket buffers fill up
    results: list[list] = [[], []]
    readers = [threading.Thread(target=lambda k=k: results[k].extend(read_parts(view, 10))) for k in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=20)
    assert [len(r) for r in results] == [10, 10]  # both readers got a stream, the stuck one blocked nobody
    assert view.figures()["viewers"] >= 1  # the stuck one is still connected
    stuck.close()


def test_publish_is_constant_time_with_a_stuck_client():
    live = LiveView("127.0.0.1", 0, fps=120, quality=95)
    stuck = socket.create_connection((live.host, live.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    big = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)  # incompressible: fills buffers fast
    calls = []
    try:
        for _ in range(200):
            start = time.perf_counter()
            live.publish(big, time.time(), dict)
            calls.append(time.perf_counter() - start)
            time.sleep(0.005)
    finally:
        stuck.close()
        live.close()
    assert live.sent >= 1 and np.percentile(calls, 99) < 0.005  # the app never waited on the client


def test_token_required_when_given_401_and_nothing_else():
    live = LiveView("127.0.0.1", 0, token="s3cret-token")
    Publisher(live)
    try:
        for path in ("/", "/figures.json", "/stream.mjpg", "/nope", "/?token=wrong"):
            status, body = get(live, path)
            assert (status, body) == (401, b"401 unauthorized\n"), path
        assert get(live, "/", method="POST") == (401, b"401 unauthorized\n")
        assert get(live, "/", method="FOO") == (401, b"401 unauthorized\n")  # before http.server's 501
        assert get(live, "/figures.json", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(live, "/figures.json", {"Authorization": "Bearer s3cret-token"})[0] == 200
        assert get(live, "/?token=s3cret-token")[0] == 200
        assert len(read_parts(live, 2, "/stream.mjpg?token=s3cret-token")) == 2
    finally:
        live.close()


def test_token_never_logged(caplog):
    live = LiveView("127.0.0.1", 0, token="s3cret-token")
    try:
        with caplog.at_level(logging.DEBUG, logger="edgecnn.web"):
            assert get(live, "/figures.json?token=s3cret-token")[0] == 200
            assert get(live, "/figures.json?token=wrong-s3cret")[0] == 401
    finally:
        live.close()
    assert "token=***" in caplog.text and "s3cret" not in caplog.text


def test_binding_beyond_loopback_needs_a_token(tmp_path, monkeypatch):
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.20", "::", "camera.local"):
        with pytest.raises(ConfigError, match="needs a token"):
            check_bind(host, None)
        check_bind(host, "a-token")
    assert parse_bind("0.0.0.0:8080") == ("0.0.0.0", 8080) and parse_bind(8080) == ("127.0.0.1", 8080)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ConfigError, match="host:port"):
        parse_bind("127.0.0.1:http")
    assert without_credentials("stream source 'rtsp://admin:pw@10.0.0.5/live'") == "stream source 'rtsp://***@10.0.0.5/live'"
    monkeypatch.delenv("EDGECNN_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("EDGECNN_TOKEN", "from-env")
    assert read_token(None) == "from-env"
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(str(tmp_path / "token")) == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_token(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="nope"):
        read_token(str(tmp_path / "nope"))


def test_app_refuses_a_lan_bind_without_token_before_listening(tmp_path, monkeypatch):
    from edgecnn.runtime.app import run
    from runtime_models import exported_models, synthetic_video

    monkeypatch.delenv("EDGECNN_TOKEN", raising=False)
    video = synthetic_video(tmp_path / "v.mp4", frames=5)
    with pytest.raises(ConfigError, match="needs a token"):
        run({"model": str(exported_models()["det_tflite"]), "source": str(video), "serve": "0.0.0.0:0"})


# --------------------------------------------------------------------------- the page in a browser


def start_tracking(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`edgecnn track` on a synthetic video played at its frame rate, serving on a free port; (process, url)."""
    from runtime_models import exported_models, synthetic_video

    video = synthetic_video(tmp_path / "v.mp4", frames=450, size=(320, 240), fps=15)
    counts = tmp_path / "counts.yaml"
    counts.write_text("lines:\n  - name: middle\n    points: [[0.5, 0], [0.5, 1]]\n"
                      "zones:\n  - name: left\n    points: [[0, 0], [0.3, 0], [0.3, 1], [0, 1]]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "track", f"model={exported_models()['det_tflite']}", f"source={video}",
         "live=true", "serve=127.0.0.1:0", f"lines={counts}", "conf=0.001", "track_conf=0.002", "low_conf=0.001",
         "max_det=5", "threads=1", *extra],
        env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if "live view on " in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining the log
            return proc, line.split("live view on ")[1].split()[0]
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail("edgecnn track did not start its live view")


def test_page_in_headless_chromium_shows_the_stream_and_live_figures(tmp_path):
    browser = find_chromium()
    if not browser:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    pytest.importorskip("websocket", reason="websocket-client is not installed (the dev extra)")
    proc, url = start_tracking(tmp_path)
    chrome = None
    try:
        chrome = DevTools(browser, tmp_path / "profile")
        chrome.open_live_view(url)
        figures = lambda: chrome.evaluate("document.querySelector('#figures').innerText")  # noqa: E731
        first_text, first = figures(), chrome.screenshot(tmp_path / "live_view_1.png")
        time.sleep(1.0)
        second_text, second = figures(), chrome.screenshot(tmp_path / "live_view_2.png")
        canvas = chrome.evaluate("(() => { const r = document.querySelector('#video').getBoundingClientRect();"
                                 " return [r.left, r.top, r.right, r.bottom].map(Math.round); })()")
        shown = chrome.evaluate("framesShown")
        latency = chrome.evaluate("browserLatency")
        lines = chrome.evaluate("document.querySelector('#lines').innerText")
        escaped = chrome.evaluate("escaped('<img src=x onerror=alert(1)>')")  # a name from the counts file
    finally:
        if chrome is not None:
            chrome.close()
        proc.terminate()
        proc.wait(timeout=30)
    x1, y1, x2, y2 = canvas
    a, b = first[y1:y2, x1:x2].astype(int), second[y1:y2, x1:x2].astype(int)
    assert a.std() > 10, "the stream area is blank"  # a decoded frame, not an empty canvas
    assert np.abs(a - b).mean() > 1, "two screenshots a second apart show the same frame"
    assert first_text != second_text and "FPS" in first_text  # the figures update
    assert shown >= 5 and 0 < latency < 2000 and "middle" in lines
    assert "<" not in escaped and ">" not in escaped
    shutil.copy(tmp_path / "live_view_2.png", tmp_path / "live_view.png")  # the artifact to look at


def test_frames_are_wanted_only_while_someone_watches_and_at_the_set_rate():
    live = LiveView("127.0.0.1", 0, fps=5)
    try:
        live.publish(None, time.time(), lambda: {"frames": 1})
        assert not live.wants_frame() and live.figures()["frames"] == 1  # figures without a frame
        reader = threading.Thread(target=read_parts, args=(live, 8), daemon=True)  # longer than the count
        reader.start()
        deadline = time.monotonic() + 10
        while not live.wants_frame():
            assert time.monotonic() < deadline, "an open stream did not ask for frames"
            time.sleep(0.01)
        wanted, start = 0, time.monotonic()
        while time.monotonic() - start < 1.0:
            if live.wants_frame():
                wanted += 1
                live.publish(frame(wanted), time.time(), dict)
            time.sleep(0.005)
        assert 4 <= wanted <= 6  # 5 a second, of about 200 frames offered
        while reader.is_alive() and time.monotonic() - start < 10:  # let the reader finish its parts
            live.publish(frame(0), time.time(), dict)
            time.sleep(0.05)
    finally:
        live.close()
