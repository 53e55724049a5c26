"""Video sources and result sinks on real OpenCV video files and a real MJPEG stream over loopback."""

from __future__ import annotations

import json
import logging
import time

import cv2
import numpy as np
import pytest

from edgecnn.runtime.mot import read_mot
from edgecnn.runtime.sinks import Annotator, JsonlSink, MotSink, VideoSink
from edgecnn.runtime.tracker import Tracks
from edgecnn.runtime.sources import Frame, SourceError, describe, open_source
from mjpeg_server import MjpegServer


def numbered_video(path, frames: int, fps: float = 30.0, size=(160, 120)):
    """An mp4 whose frame i is a flat gray of level 8 * i (so order survives lossy coding)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 8 * i, np.uint8))
    writer.release()
    return path


def level(frame: Frame) -> int:
    return int(round(frame.image.mean() / 8))


def test_describe_kinds():
    assert describe(0) == describe("1") == describe("/dev/video2") == "webcam"
    assert describe("picam") == "picam"
    assert describe("csi") == describe("csi:1") == describe("videotestsrc ! appsink") == "gstreamer"
    assert describe("rtsp://cam/1") == describe("http://h:8080/stream.mjpg") == "stream"
    assert describe("clip.mp4") == "file"


def test_file_source_reads_every_frame_in_order(tmp_path):
    video = numbered_video(tmp_path / "n.mp4", 24)
    with open_source(str(video)) as source:
        assert not source.live and source.fps == pytest.approx(30.0)
        frames = list(source)
    assert [f.index for f in frames] == list(range(24))
    assert [level(f) for f in frames] == list(range(24))
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(a.timestamp <= b.timestamp for a, b in zip(frames, frames[1:]))


def test_live_source_keeps_only_the_newest_frame(tmp_path):
    video = numbered_video(tmp_path / "n.mp4", 30, fps=30.0)
    got, ages = [], []
    with open_source(str(video), live=True) as source:
        assert source.live
        while (frame := source.read()) is not None:
            ages.append(time.monotonic() - frame.timestamp)
            got.append(frame)
            time.sleep(0.1)  # a consumer 3x slower than the camera
    indices = [f.index for f in got]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert len(got) < 20 and source.dropped >= 10, (indices, source.dropped)
    assert len(got) + source.dropped == 30
    assert [level(f) for f in got] == indices  # each frame is the one its index says
    # the frame handed out is always the newest, so its age stays near one camera period (a queue
    # would hand out ever older frames: 30 frames in, 10 out, the last would be ~2 s old)
    assert max(ages) < 0.15, ages


def gray_by_connection(connection: int, i: int) -> np.ndarray:
    return np.full((120, 160, 3), 40 * connection, np.uint8)


def test_mjpeg_stream_drops_and_reconnects(caplog):
    server = MjpegServer(gray_by_connection, drop_after=8)
    levels = []
    try:
        with caplog.at_level(logging.WARNING, logger="edgecnn.sources"), open_source(server.url, reconnect_timeout=10) as source:
            assert source.live
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                frame = source.read()
                assert frame is not None
                levels.append(int(round(frame.image.mean() / 40)))
                if levels.count(2) >= 5:
                    break
    finally:
        server.stop()
    assert levels[0] == 1 and levels.count(2) >= 5, levels  # frames from before and after the drop
    assert source.reconnects == 1
    assert server.connections == 2
    log = caplog.text
    assert "dropped after" in log and "reconnected after" in log


def test_stream_lost_for_good_is_an_error_naming_it():
    server = MjpegServer(gray_by_connection, drop_after=3)
    url = server.url
    with open_source(url, reconnect_timeout=1.0) as source:
        server.stop()  # the server goes away for good after its first frames
        with pytest.raises(SourceError, match="lost") as err:
            while source.read() is not None:
                pass
    assert url in str(err.value)


@pytest.mark.parametrize("spec", ["missing-video.mp4", "http://127.0.0.1:9/none.mjpg", 97])
def test_unopenable_source_is_an_error_naming_it(spec):
    with pytest.raises(SourceError) as err:
        open_source(spec)
    assert str(spec) in str(err.value) and "cannot open" in str(err.value)


def tracks_for(i: int) -> Tracks:
    boxes = np.array([[10 + 2 * i, 20, 50 + 2 * i, 90], [100, 30 + i, 140, 100 + i]], np.float32)
    return Tracks(boxes, np.array([1, 7]), np.array([0.9, 0.6], np.float32), np.array([0, 1]))


def test_sinks_write_video_mot_and_json_lines(tmp_path):
    video = numbered_video(tmp_path / "in.mp4", 12, size=(160, 120))
    out_video, out_mot, out_jsonl = tmp_path / "out" / "a.mp4", tmp_path / "a.txt", tmp_path / "a.jsonl"
    sinks = [VideoSink(out_video, fps=30.0), MotSink(out_mot), JsonlSink(out_jsonl, ["person", "car"])]
    annotator = Annotator(["person", "car"])
    with open_source(str(video)) as source:
        for frame in source:
            tracks = tracks_for(frame.index)
            annotated = annotator.draw(frame.image, tracks, fps=30.0)
            assert not np.array_equal(annotated, frame.image)
            for sink in sinks:
                sink.write(frame, tracks, annotated)
    assert not out_video.exists()  # the video appears only when complete
    for sink in sinks:
        sink.close()

    capture = cv2.VideoCapture(str(out_video))
    assert capture.isOpened()
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (120, 160, 3)
    assert [p.name for p in out_video.parent.iterdir()] == ["a.mp4"]  # no temporary file left

    rows = read_mot(out_mot)
    assert rows.shape == (24, 10)
    assert list(np.unique(rows[:, 0])) == list(range(1, 13)) and set(rows[:, 1]) == {1, 7}
    first_id1 = rows[(rows[:, 0] == 1) & (rows[:, 1] == 1)][0]
    np.testing.assert_allclose(first_id1[2:7], [10, 20, 40, 70, 0.9], rtol=1e-6)

    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(12))
    assert lines[3]["tracks"][0] == {"id": 1, "box": [16.0, 20.0, 56.0, 90.0], "score": 0.9, "class": 0, "name": "person"}
    assert abs(lines[0]["time"] - time.time()) < 60


def test_video_sink_closed_after_an_error_leaves_no_file(tmp_path):
    target = tmp_path / "b.mp4"
    sink = VideoSink(target, fps=10.0)
    frame = Frame(np.zeros((64, 64, 3), np.uint8), 0, time.monotonic())
    sink.write(frame, Tracks.empty(), frame.image)
    sink.close(RuntimeError("camera lost"))
    assert list(tmp_path.iterdir()) == []


def test_video_sink_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="save="):
        VideoSink(tmp_path / "x.gif", fps=10.0)


def test_sources_this_machine_lacks_are_errors_that_say_what_to_install(monkeypatch):
    import importlib.util

    from edgecnn.runtime.sinks import WindowSink

    if importlib.util.find_spec("picamera2") is None:
        with pytest.raises(SourceError, match="apt install python3-picamera2"):
            open_source("picam")
    if "GStreamer:                   NO" in cv2.getBuildInformation():
        for spec in ("csi", "videotestsrc ! videoconvert ! appsink"):
            with pytest.raises(SourceError, match="built without GStreamer"):
                open_source(spec)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="show=true needs a display"):
        WindowSink()
