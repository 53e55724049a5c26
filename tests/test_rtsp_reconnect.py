"""A real RTSP stream (GStreamer's RTSP server, started here) stopped and restarted while
runtime/sources.py reads it: the source reconnects on its own, and CameraEvents reports the camera
down and up, in order, into an events file."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pytest

from edgecnn.runtime.event_sinks import EVENT_KEYS, CameraEvents, open_event_outputs
from edgecnn.runtime.sources import open_source
from mqtt_broker import free_port
from rtsp_server import RtspServer, rtsp_server_missing


@pytest.fixture(scope="module")
def rtsp():
    missing = rtsp_server_missing()
    if missing:
        pytest.skip(missing)
    server = RtspServer(free_port()).start()
    yield server
    server.stop()


def frames_for(source, seconds: float) -> int:
    """Frames read within `seconds` (read() blocks while the stream is down)."""
    got, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        if source.poll() is not None:
            got += 1
        time.sleep(0.01)
    return got


@pytest.mark.slow
def test_rtsp_source_reconnects_and_reports_down_and_up(rtsp, tmp_path):
    cfg = EVENT_KEYS.resolve({"events": str(tmp_path / "events.jsonl"), "camera": "yard"})
    with ExitStack() as stack:
        sinks, _ = open_event_outputs(cfg, stack)
        events = CameraEvents("yard", sinks)
        source = stack.enter_context(open_source(rtsp.url, reconnect_timeout=30))
        events.watch(source, every=0.05)
        assert frames_for(source, 2.0) > 5 and source.state == "up"
        rtsp.stop()
        deadline = time.monotonic() + 15
        while source.state == "up" and time.monotonic() < deadline:
            source.poll()
            time.sleep(0.05)
        assert source.state == "reconnecting"
        rtsp.start()
        deadline = time.monotonic() + 30
        while source.state != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert source.state == "up" and source.reconnects == 1
        assert frames_for(source, 2.0) > 5  # frames flow again
        time.sleep(0.2)
        events.close()
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert kinds == ["camera_down", "camera_up"]
