"""Line and zone counts: exact on a synthetic video's ground truth, hysteresis on the line, the counts file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.runtime.counting import Counter, load_regions, polygon_distance
from edgecnn.runtime.tracker import Tracks

W, H, FPS = 320, 240, 30


def write_counts(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def counter_from(tmp_path: Path, text: str, names=(), max_age: int = 10_000) -> Counter:
    return Counter(load_regions([write_counts(tmp_path / "counts.yaml", text)], names), max_age=max_age)


def feet_box(x: float, y: float) -> np.ndarray:
    """A 20x40 box standing on (x, y)."""
    return np.array([[x - 10, y - 40, x + 10, y]], np.float64)


def run_track(counter: Counter, xs, ys, tid: int = 1, cls: int = 0) -> None:
    for i, (x, y) in enumerate(zip(xs, ys)):
        counter.update(Tracks(feet_box(x, y), np.array([tid]), np.ones(1), np.array([cls])), i / FPS, (W, H))


# --------------------------------------------------------------------------- ground truth of a synthetic video


@pytest.fixture(scope="module")
def gt_video(tmp_path_factory):
    from edgecnn.data.synth import synth_video

    out = tmp_path_factory.mktemp("synth")
    synth_video(out, sequences=1, frames=150, width=W, height=H, fps=FPS)
    seq = next((out / "test").iterdir())
    return seq, np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")


def crossings_by_definition(signed: np.ndarray, band: float) -> tuple[bool, bool]:
    """(went left → right, went right → left) at some time: an earlier point beyond the band on one
    side and a later one beyond it on the other (once per direction)."""
    left, right = signed < -band, signed > band
    was_left = np.maximum.accumulate(left)
    was_right = np.maximum.accumulate(right)
    return bool((right[1:] & was_left[:-1]).any()), bool((left[1:] & was_right[:-1]).any())


def feed_ground_truth(counter: Counter, gt: np.ndarray) -> list[dict]:
    """Every ground-truth box as a track (its gt ID), frame by frame; the per-frame reports."""
    reports = []
    for frame in range(1, int(gt[:, 0].max()) + 1):
        rows = gt[gt[:, 0] == frame]
        boxes = np.column_stack([rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]])
        tracks = Tracks(boxes, rows[:, 1].astype(int), np.ones(len(rows)), rows[:, 7].astype(int) - 1)
        counter.update(tracks, (frame - 1) / FPS, (W, H))
        reports.append(counter.report())
    return reports


def test_line_counts_are_exact_on_synthetic_ground_truth(tmp_path, gt_video):
    _, gt = gt_video
    counter = counter_from(tmp_path, "lines:\n  - name: middle\n    points: [[0.5, 0.0], [0.5, 1.0]]\n"
                                     "  - name: people\n    points: [[0.5, 0.0], [0.5, 1.0]]\n    classes: [person]\n",
                           names=["person", "car", "sign", "ball", "box"])
    feed_ground_truth(counter, gt)
    # The line runs down the frame, so its right (on screen, looking along it) is the frame's left:
    # "in" is walking right to left.
    expected = {"middle": {"in": 0, "out": 0}, "people": {"in": 0, "out": 0}}
    for tid in np.unique(gt[:, 1]):
        rows = gt[gt[:, 1] == tid]
        foot_x = rows[:, 2] + rows[:, 4] / 2
        to_right, to_left = crossings_by_definition(foot_x - W / 2, 6.0)
        for name in ("middle", "people") if rows[0, 7] == 1 else ("middle",):
            expected[name]["out"] += to_right
            expected[name]["in"] += to_left
    report = counter.report()["lines"]
    assert report == expected
    assert report["middle"]["in"] + report["middle"]["out"] >= 3  # the video has crossings to count
    assert report["people"] != report["middle"]


def test_zone_occupancy_and_dwell_are_exact_on_synthetic_ground_truth(tmp_path, gt_video):
    _, gt = gt_video
    y0, y1, band = 120.0, 170.0, 6.0
    # wider than the frame: for every foot point the distance to the edge is the one to y0 or y1
    counter = counter_from(tmp_path, f"zones:\n  - name: walkway\n    points: [[-100, {y0}], [{W + 100}, {y0}], "
                                     f"[{W + 100}, {y1}], [-100, {y1}]]\n")
    reports = feed_ground_truth(counter, gt)
    inside: dict[int, float] = {}  # track → time entered
    dwell: dict[int, float] = {}
    for frame, report in enumerate(reports, 1):
        rows, now = gt[gt[:, 0] == frame], (frame - 1) / FPS
        for tid, foot_y in zip(rows[:, 1].astype(int), rows[:, 3] + rows[:, 5]):
            depth = min(foot_y - y0, y1 - foot_y)
            if depth > band and tid not in inside:
                inside[tid] = now
            elif depth < -band and tid in inside:
                dwell[tid] = dwell.get(tid, 0.0) + now - inside.pop(tid)
        zone = report["zones"]["walkway"]
        assert zone["occupancy"] == len(inside), f"frame {frame}"
        assert zone["dwell_s"] == {tid: pytest.approx(dwell.get(tid, 0) + now - t, abs=0.01) for tid, t in inside.items()}
    summary = counter.summary()["zones"]["walkway"]
    assert summary["visits"] >= 2 and summary["occupancy_max"] >= 1
    end = (len(reports) - 1) / FPS
    for tid, t in inside.items():
        dwell[tid] = dwell.get(tid, 0.0) + end - t
    assert summary["dwell_s"] == {str(tid): pytest.approx(v, abs=0.01) for tid, v in sorted(dwell.items())}


# --------------------------------------------------------------------------- built trajectories


def test_a_track_standing_on_the_line_counts_once(tmp_path):
    counter = counter_from(tmp_path, "lines:\n  - name: door\n    points: [[0, 120], [320, 120]]\n    band: 6\n")
    rng = np.random.default_rng(0)
    # walks down to the line, stands on it jittering within the band for 3 s, then walks on
    ys = np.concatenate([np.linspace(60, 120, 30), 120 + rng.uniform(-5.5, 5.5, 90), np.linspace(120, 200, 30)])
    run_track(counter, np.full(len(ys), 160.0), ys)
    assert counter.report()["lines"]["door"] == {"in": 1, "out": 0}  # downwards: the line's right side


def test_each_direction_counts_once_per_track_and_only_within_the_segment(tmp_path):
    counter = counter_from(tmp_path, "lines:\n  - name: gate\n    points: [[100, 0], [100, 100]]\n")
    # track 1 crosses right to left, back, and right to left again: one "in" and one "out"
    xs = np.concatenate([np.linspace(150, 50, 20), np.linspace(50, 150, 20), np.linspace(150, 50, 20)])
    run_track(counter, xs, np.full(len(xs), 80.0), tid=1)
    # track 2 passes below the segment's end (y 150 > 100): not a crossing
    run_track(counter, np.linspace(150, 50, 20), np.full(20, 150.0), tid=2)
    assert counter.report()["lines"]["gate"] == {"in": 1, "out": 1}


def test_tracks_the_tracker_deleted_leave_their_zone_when_last_seen(tmp_path):
    counter = counter_from(tmp_path, "zones:\n  - name: z\n    points: [[0, 0], [1, 0], [1, 1], [0, 1]]\n", max_age=5)
    run_track(counter, np.full(30, 160.0), np.full(30, 120.0))  # 30 frames, 29/30 s inside
    assert counter.report()["zones"]["z"]["occupancy"] == 1
    for i in range(30, 37):  # other tracks go on; track 1 is not seen again
        counter.update(Tracks.empty(), i / FPS, (W, H))
    zone = counter.summary()["zones"]["z"]
    assert zone["occupancy"] == 0 and zone["dwell_s"] == {"1": pytest.approx(29 / FPS, abs=0.01)}


def test_polygon_distance_matches_opencv():
    polygon = np.array([[10, 10], [200, 30], [150, 200], [60, 120], [20, 180]], np.float64)
    points = np.random.default_rng(1).uniform(0, 220, (200, 2))
    ours = polygon_distance(points, polygon)
    theirs = [cv2.pointPolygonTest(polygon.astype(np.float32), (float(x), float(y)), True) for x, y in points]
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


# --------------------------------------------------------------------------- the counts file


@pytest.mark.parametrize("text, message", [
    ("lines:\n  - name: a\n    points: [[0, 0], [1, 1], [2, 2]]\n", "lines[0] (a): points must be 2 points"),
    ("zones:\n  - name: z\n    points: [[0, 0], [1, 1]]\n", "zones[0] (z): points must be 3 or more points"),
    ("lines:\n  - points: [[0, 0], [1, 1]]\n", "lines[0]: needs a name"),
    ("lines:\n  - name: a\n    points: [[0, 0], [1, 1]]\n    colour: red\n", "lines[0] (a): unknown key 'colour'"),
    ("lines:\n  - name: a\n    points: [[0, 0], [1, 1]]\n    classes: [dog]\n", "lines[0] (a): classes: 'dog' is not a class"),
    ("lines:\n  - name: a\n    points: [[0, 0], [1, 1]]\n  - name: a\n    points: [[0, 1], [1, 1]]\n",
     "lines[1]: the name 'a' is used twice"),
    ("lines:\n  - name: a\n    points: [[0, 0], [1, 1]\n", "not valid YAML"),
    ("counts:\n  - name: a\n", "unknown section 'counts'"),
])
def test_bad_counts_files_name_the_file_and_the_entry(tmp_path, text, message):
    path = write_counts(tmp_path / "bad.yaml", text)
    with pytest.raises(ValueError) as err:
        load_regions([path], ["person", "car"])
    assert str(path) in str(err.value) and message in str(err.value)


def test_counts_file_reads_fractions_pixels_and_classes(tmp_path):
    path = write_counts(tmp_path / "c.yaml", "lines:\n  - name: door\n    points: [[0.5, 0], [0.5, 1]]\n"
                        "    classes: [car, 0]\nzones:\n  - name: lot\n    points: [[10, 10], [300, 10], [300, 200]]\n")
    regions = load_regions([path, path], ["person", "car"])  # named twice (lines= and zones=): read once
    door, lot = regions
    for region in regions:
        region.fit(W, H)
    assert door.classes == (1, 0) and door.pixels.tolist() == [[160, 0], [160, 240]]
    assert lot.kind == "zone" and lot.pixels.tolist() == [[10, 10], [300, 10], [300, 200]]
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_regions([tmp_path / "missing.yaml"])


# --------------------------------------------------------------------------- through the tracking app


def test_track_counts_go_to_jsonl_summary_and_the_saved_video(tmp_path):
    from edgecnn.runtime.app import run
    from runtime_models import exported_models, synthetic_video

    video = synthetic_video(tmp_path / "v.mp4", frames=60, size=(W, H))
    counts = write_counts(tmp_path / "counts.yaml", "lines:\n  - name: middle\n    points: [[0.5, 0], [0.5, 1]]\n"
                          "zones:\n  - name: left\n    points: [[0, 0], [0.3, 0], [0.3, 1], [0, 1]]\n")
    report = run({"model": str(exported_models()["det_tflite"]), "source": str(video), "lines": str(counts),
                  "jsonl": str(tmp_path / "t.jsonl"), "save": str(tmp_path / "out.mp4"),
                  "conf": 0.001, "track_conf": 0.002, "low_conf": 0.001, "max_det": 8, "threads": 1})
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(records) == report["frames"] == 60 and report["tracks"] > 0
    summary = report["counts"]
    assert records[-1]["counts"]["lines"] == summary["lines"]
    events = [e for r in records for e in r["events"]]
    for direction in ("in", "out"):
        assert sum(e.get("direction") == direction for e in events) == summary["lines"]["middle"][direction]
    # the same counts from the tracks the app wrote, by the definition
    expected = {"in": 0, "out": 0}
    ids = {t["id"] for r in records for t in r["tracks"]}
    for tid in ids:
        foot_x = np.array([(t["box"][0] + t["box"][2]) / 2 for r in records for t in r["tracks"] if t["id"] == tid])
        to_right, to_left = crossings_by_definition(foot_x - W / 2, 6.0)
        expected["out"] += to_right
        expected["in"] += to_left
    assert summary["lines"]["middle"] == expected
    zone = summary["zones"]["left"]
    assert zone["visits"] == sum(e.get("event") == "enter" for e in events)
    assert max(r["counts"]["zones"]["left"]["occupancy"] for r in records) == zone["occupancy_max"]
    # drawn on the saved video: the line down the middle (yellow) and the zone's edge (light blue)
    ok, image = cv2.VideoCapture(str(tmp_path / "out.mp4")).read()
    assert ok
    strip = lambda x: image[60:H - 40, x - 2:x + 3].astype(int)  # noqa: E731  rows by 5 BGR pixels round x
    b, g, r = np.moveaxis(strip(W // 2), -1, 0)
    assert ((r > 150) & (g > 150) & (b < 100)).any(axis=1).mean() > 0.5  # the yellow line, under the boxes
    b, g, r = np.moveaxis(strip(round(0.3 * W)), -1, 0)
    assert ((b > 150) & (r < 100)).any(axis=1).mean() > 0.5
