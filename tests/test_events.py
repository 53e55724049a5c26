"""The event record and the events a camera's tracks give: stable ids, each kind once, lost tracks leave."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.runtime.counting import Counter, load_regions
from edgecnn.runtime.events import Event, EventBuilder, camera_event, event_id
from edgecnn.runtime.tracker import Tracks

W, H, FPS = 320, 240, 10.0
COUNTS = """lines:
  - name: door
    points: [[160, 0], [160, 240]]
zones:
  - name: desk
    points: [[200, 100], [300, 100], [300, 240], [200, 240]]
    dwell: 1.5
"""


def tracks_at(*people: tuple[int, float, float]) -> Tracks:
    """(track id, x, y of the feet) each, class 0."""
    if not people:
        return Tracks.empty()
    boxes = np.array([[x - 10, y - 40, x + 10, y] for _, x, y in people], np.float64)
    return Tracks(boxes, np.array([p[0] for p in people]), np.ones(len(people)), np.zeros(len(people), int))


def run(tmp_path, frames, max_age=3):
    (tmp_path / "counts.yaml").write_text(COUNTS)
    counter = Counter(load_regions([tmp_path / "counts.yaml"], ["person"]), max_age=max_age)
    builder = EventBuilder("door-cam", ["person"], max_age=max_age)
    events = []
    for i, people in enumerate(frames):
        tracks = tracks_at(*people)
        counter.update(tracks, i / FPS, (W, H))
        events += builder.update(i, 1_700_000_000 + i / FPS, tracks, counter)
    return events


def walk():
    """Track 7 walks left → right across the door line ("out": right to left looking down it), into the
    desk zone, waits 2 s there, then vanishes."""
    frames = [[(7, x, 200)] for x in range(100, 260, 20)]  # 8 frames, ends inside the zone at x=240
    frames += [[(7, 250, 200)]] * 20  # 2 s inside: past the 1.5 s dwell limit
    return frames + [[]] * 5  # gone: lost after max_age=3 frames unseen


def test_a_walk_gives_each_event_once_in_order(tmp_path):
    events = run(tmp_path, walk())
    kinds = [(e.kind, e.region, e.direction) for e in events]
    assert kinds == [("appeared", None, None), ("line_cross", "door", "out"), ("zone_enter", "desk", None),
                     ("dwell", "desk", None), ("zone_leave", "desk", None), ("lost", None, None)]
    by_kind = {e.kind: e for e in events}
    assert all(e.track == 7 and e.class_name == "person" and e.class_id == 0 for e in events)
    assert by_kind["dwell"].dwell_s == pytest.approx(1.6, abs=0.01)  # first frame past 1.5 s
    # the lost track leaves the zone when it was last seen (frame 27), as the counter has it
    assert by_kind["lost"].frame == by_kind["zone_leave"].frame == 27
    assert by_kind["zone_leave"].dwell_s == pytest.approx(2.1, abs=0.01)


def test_ids_are_stable_across_a_replay_and_unique(tmp_path):
    first, second = run(tmp_path, walk()), run(tmp_path, walk())
    assert [e.id for e in first] == [e.id for e in second]
    assert len({e.id for e in first}) == len(first)
    assert first[0].id == event_id("door-cam", "appeared", 7, None, 0)


def test_record_round_trips_through_json():
    event = Event("gate", "line_cross", 1_700_000_000.25, 12, track=3, class_id=2, class_name="car",
                  region="entry", direction="out", clip="gate/clip.avi")
    record = json.loads(event.to_json())
    assert record["time"] == "2023-11-14T22:13:20.250Z" and record["epoch"] == 1_700_000_000.25
    assert "dwell_s" not in record and record["id"] == event.id
    assert Event.from_dict(record) == event


def test_camera_events_and_bad_kind():
    down, up = camera_event("gate", False, 99, 1.0, 1), camera_event("gate", True, 99, 5.0, 2)
    again = camera_event("gate", False, 99, 6.0, 3)  # down again before a frame came
    assert (down.kind, up.kind) == ("camera_down", "camera_up") and down.track is None
    assert len({down.id, up.id, again.id}) == 3 and Event.from_dict(again.as_dict()) == again
    with pytest.raises(ValueError, match="crossed"):
        Event("gate", "crossed", 0.0, 0)


def test_dwell_on_a_line_is_an_error(tmp_path):
    (tmp_path / "c.yaml").write_text("lines:\n  - name: l\n    points: [[0, 0], [1, 1]]\n    dwell: 3\n")
    with pytest.raises(ValueError, match=r"lines\[0\] \(l\): dwell .* on a line"):
        load_regions([tmp_path / "c.yaml"])


def test_thousands_of_short_tracks_keep_every_per_track_structure_bounded(tmp_path):
    """A site runs for weeks: 2000 tracks walk through the door into the desk zone, a new one every
    2 frames, each seen 10 frames (every 10th stays 20, past the dwell limit). The counter's, the
    event builder's and the stream's per-track state stays within the tracks alive (plus max_age
    frames and the summary's window of recent tracks) while the run's figures cover all of them."""
    from edgecnn.runtime.app import TrackTally
    from edgecnn.runtime.counting import RECENT_TRACKS

    (tmp_path / "counts.yaml").write_text(COUNTS)
    tracks_n, max_age, fps = 2000, 5, FPS
    counter = Counter(load_regions([tmp_path / "counts.yaml"], ["person"]), max_age=max_age)
    builder, tally = EventBuilder("door-cam", ["person"], max_age=max_age), TrackTally(max_age)
    life = {tid: 20 if tid % 10 == 0 else 10 for tid in range(tracks_n)}
    born = {tid: 2 * tid for tid in range(tracks_n)}
    events, largest = [], 0
    for frame in range(2 * tracks_n + 20 + max_age + 2):
        people = [(tid, min(100 + 20 * (frame - born[tid]), 250), 200)
                  for tid in range(max(0, frame // 2 - 20), min(tracks_n, frame // 2 + 1))
                  if 0 <= frame - born[tid] < life[tid]]
        tracks = tracks_at(*people)
        counter.update(tracks, frame / fps, (W, H))
        events += builder.update(frame, 1_700_000_000 + frame / fps, tracks, counter)
        tally.update(tracks.ids.tolist())
        line, zone = counter.lines[0], counter.zones[0]
        sizes = (len(counter.last_seen), len(line.side), len(line.counted), len(zone.entered), len(zone.dwell),
                 len(builder.seen), len(builder.inside), len(builder.dwelled), len(tally.last_seen))
        largest = max(largest, *sizes)
    alive = 10 + max_age + 1  # tracks alive at once (≤ 10) and those not yet deleted
    assert largest <= alive, largest
    zone = counter.zones[0]
    assert len(zone.finished) == RECENT_TRACKS and zone.tracks == tracks_n
    summary = counter.summary()["zones"]["desk"]
    assert len(summary["dwell_s"]) == RECENT_TRACKS and summary["visits"] == tracks_n
    leaves = [e.dwell_s for e in events if e.kind == "zone_leave"]
    assert len(leaves) == tracks_n and summary["dwell_s_max"] == pytest.approx(max(leaves), abs=0.01)
    assert summary["dwell_s_mean"] == pytest.approx(np.mean(leaves), abs=0.01)
    kinds = [e.kind for e in events]
    assert kinds.count("lost") == kinds.count("appeared") == tally.total == tracks_n
    assert kinds.count("dwell") == tracks_n // 10  # only the tracks that stay 20 frames (2 s > 1.5 s)
    assert sum(counter.report()["lines"]["door"].values()) == tracks_n
