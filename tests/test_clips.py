"""Event clips: pre- and post-roll frames read back with OpenCV, snapshots, retention by budget and
age, and a clips directory that cannot be written."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from edgecnn.config import ConfigError
from edgecnn.runtime.clips import Clip, ClipRecorder, ClipWriter
from edgecnn.runtime.events import Event

FPS = 10.0


def numbered(i: int) -> np.ndarray:
    """A 160x120 frame whose left half's grey level is 2 * i (survives JPEG to within a few levels)."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = 2 * i
    return image


def number_of(image: np.ndarray) -> int:
    return int(round(float(image[:, 10:70].mean()) / 2))


def read_clip(path) -> list[int]:
    capture = cv2.VideoCapture(str(path))
    found = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        found.append(number_of(image))
    capture.release()
    return found


@pytest.mark.parametrize("fmt", ["avi", "mp4"])
def test_clip_holds_pre_and_post_roll(tmp_path, fmt):
    writer = ClipWriter(tmp_path / "clips", fmt)
    recorder = ClipRecorder(writer, "gate", pre_s=1.0, post_s=2.0, fps=FPS)
    named = []
    for i in range(100):
        recorder.add(numbered(i), i / FPS)
        if i in (50, 55):  # the second event falls inside the first one's clip and extends it
            event = Event("gate", "line_cross", 1_700_000_000 + i / FPS, i, track=1, region="door", direction="in")
            named.append(recorder.trigger(event, i / FPS))
    writer.close()
    assert named[0].clip == named[1].clip and named[0].snapshot != named[1].snapshot
    frames = read_clip(writer.directory / named[0].clip)
    # 1 s before the first event to 2 s after the last (mp4v blurs the grey level by up to 4, i.e. 2 numbers)
    assert len(frames) == 36 and np.abs(np.array(frames) - np.arange(40, 76)).max() <= (0 if fmt == "avi" else 2)
    snapshot = cv2.imread(str(writer.directory / named[1].snapshot))
    assert number_of(snapshot) == 55 and named[0].clip.startswith("gate/20231114T221325-")
    assert writer.written == 1 and writer.failed == 0


def test_kinds_that_do_not_record_are_passed_through(tmp_path):
    writer = ClipWriter(tmp_path)
    recorder = ClipRecorder(writer, "gate", kinds=("dwell",))
    recorder.add(numbered(1), 0.0)
    event = Event("gate", "appeared", 1.0, 0, track=1)
    assert recorder.trigger(event, 0.0) is event and recorder.clip is None
    writer.close()


def test_retention_deletes_the_oldest_past_the_budget_and_age(tmp_path):
    writer = ClipWriter(tmp_path, max_bytes=25_000, max_age_s=3600)
    files = []
    for i in range(6):
        path = tmp_path / "cam" / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 10_000)
        os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))
        files.append(path)
    old = tmp_path / "cam" / "old.avi"
    old.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - 7200, time.time() - 7200))  # past max_age: goes although it is small
    writer.retain()
    writer.close()
    assert [p.exists() for p in files] == [False] * 4 + [True] * 2 and not old.exists()
    assert writer.deleted == 5


def test_unwritable_clip_directory_names_the_key(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ConfigError, match=r"clips=.*a-file/clips: the clips directory is not writable"):
        ClipWriter(tmp_path / "a-file" / "clips")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (needs root and a kernel that lets this container mount)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_drops_the_oldest_clips_and_never_fails_the_run(tiny_disk):
    filler = tiny_disk / "other-data.bin"  # someone else's file, not ours to delete
    filler.write_bytes(np.random.default_rng(0).bytes(600_000))
    writer = ClipWriter(tiny_disk / "clips", max_bytes=1 << 30)  # the budget alone would never bite
    recorder = ClipRecorder(writer, "gate", pre_s=1.0, post_s=1.0, fps=FPS)
    rng = np.random.default_rng(1)
    for i in range(200):  # noise frames: big JPEGs, ~25 KB each; a clip every 3 s
        recorder.add(rng.integers(0, 255, (120, 160, 3), np.uint8), i / FPS)
        if i % 30 == 15:
            recorder.trigger(Event("gate", "dwell", float(i), i, track=i, region="z"), i / FPS)
    recorder.finish()
    writer.close()
    clips = sorted((tiny_disk / "clips" / "gate").glob("*.mp4"))
    assert filler.exists() and writer.written >= 3 and writer.deleted >= 1
    assert clips and all(len(read_clip(c)) > 0 for c in clips)  # what is there is whole


def test_clips_waiting_for_a_slow_writer_are_bounded_and_the_drops_counted(tmp_path):
    """A writer slower than the cameras: past `max_pending_mb` of queued JPEGs new clips are dropped
    (counted, logged) instead of filling memory; what was queued is written."""
    rng = np.random.default_rng(0)
    frames = [(t / FPS, cv2.imencode(".jpg", rng.integers(0, 255, (240, 320, 3), np.uint8))[1].tobytes())
              for t in range(60)]
    long, short = frames, frames[:2]  # the long clip keeps the writer busy (~1 s) while 5 short ones come
    size = lambda clip: sum(len(jpeg) for _, jpeg in clip)  # noqa: E731
    writer = ClipWriter(tmp_path, max_pending_mb=(size(long) + 2.5 * size(short)) / 2**20)
    writer.submit(Clip(tmp_path / "gate" / "long.mp4", 0.0, long))
    for i in range(5):
        writer.submit(Clip(tmp_path / "gate" / f"{i}.mp4", 0.0, short))
    queued = writer.pending_bytes
    writer.close()
    assert queued <= writer.max_pending and writer.dropped == 3
    assert writer.written == 3 and writer.pending_bytes == 0
    assert sorted(p.name for p in (tmp_path / "gate").glob("*.mp4")) == ["0.mp4", "1.mp4", "long.mp4"]
