"""Offline refinement of det.txt tracking: backfill of tentative frames, gap interpolation, keys."""

import json

import numpy as np
import pytest

from edgecnn.cli import main
from edgecnn.config import ConfigError
from edgecnn.metrics.mot import score_files
from edgecnn.runtime.mot import read_mot, write_mot
from edgecnn.runtime.offline import interpolate_gaps, track_detections
from edgecnn.runtime.tracker import Detections, Tracker
from tracking_data import synthetic_scene, walk


def det_rows(frames, boxes_xyxy, scores):
    """det.txt rows for one box per listed frame."""
    boxes = np.asarray(boxes_xyxy, float)
    return np.column_stack([frames, -np.ones(len(frames)), boxes[:, :2], boxes[:, 2:] - boxes[:, :2],
                            scores, -np.ones((len(frames), 3))])


def rows_of(path, track_id=None):
    rows = read_mot(path)
    return rows if track_id is None else rows[rows[:, 1] == track_id]


def test_backfill_restores_tentative_frames_of_confirmed_tracks_only(tmp_path):
    # A person seen in frames 2-11 (frame 1, which confirms at once, is empty) and a false box that
    # lasts two frames, fewer than n_init=3: it never becomes a track.
    person = walk((100, 100), (3, 0), 10)
    scores = np.full(10, 0.9)
    scores[0] = 0.6  # the first hit is below output_conf: not shown online, not backfilled either
    det = np.concatenate([det_rows(np.arange(2, 12), person, scores),
                          det_rows(np.array([5, 6]), [[600, 300, 640, 400]] * 2, [0.95, 0.95])])
    write_mot(tmp_path / "det.txt", det)
    online = track_detections(tmp_path / "det.txt", tmp_path / "online.txt", n_init=3, output_conf=0.7)
    refined = track_detections(tmp_path / "det.txt", tmp_path / "refined.txt", n_init=3, output_conf=0.7,
                               backfill=True)
    assert rows_of(tmp_path / "online.txt")[:, 0].tolist() == list(range(4, 12))
    rows = rows_of(tmp_path / "refined.txt")
    assert set(rows[:, 1]) == {1}  # the two-frame false alarm never surfaces
    assert rows[:, 0].tolist() == list(range(3, 12))  # frame 3 was tentative; frame 2 is below 0.7
    assert np.allclose(rows[:, 2:4], person[1:, :2], atol=0.006)
    assert np.allclose(rows[:, 4:6], person[1:, 2:] - person[1:, :2], atol=0.006)
    assert online["rows_backfilled"] == 0 and refined["rows_backfilled"] == 1


def test_backfill_with_a_larger_n_init_gives_back_n_init_minus_one_frames(tmp_path):
    gt, det = synthetic_scene(seed=1, frames=60, people=4)
    write_mot(tmp_path / "det.txt", det)
    track_detections(tmp_path / "det.txt", tmp_path / "online.txt", n_init=6)
    refined = track_detections(tmp_path / "det.txt", tmp_path / "refined.txt", n_init=6, backfill=True)
    before, after = rows_of(tmp_path / "online.txt"), rows_of(tmp_path / "refined.txt")
    assert refined["rows_backfilled"] == len(after) - len(before) > 0
    assert set(after[:, 1]) == set(before[:, 1])  # the same tracks, only longer
    later = [i for i in set(before[:, 1]) if before[before[:, 1] == i, 0].min() > 1]  # frame 1 confirms at once
    assert later
    for track_id in later:  # n_init hits in a row confirm a track; the first n_init - 1 come back
        first_online = before[before[:, 1] == track_id, 0].min()
        assert after[after[:, 1] == track_id, 0].min() == first_online - 5, track_id


def test_interpolation_fills_short_gaps_with_the_linear_boxes_and_leaves_longer_ones(tmp_path):
    person = walk((100, 100), (4, 1), 30)
    seen = [f for f in range(2, 31) if not (7 <= f <= 8 or 15 <= f <= 18)]  # 2 and 4 frames missing
    write_mot(tmp_path / "det.txt", det_rows(np.array(seen), person[np.array(seen) - 1], np.full(len(seen), 0.9)))
    for interpolate, filled in ((0, []), (2, [7, 8]), (3, [7, 8]), (4, [7, 8, 15, 16, 17, 18])):
        out = tmp_path / f"res{interpolate}.txt"
        result = track_detections(tmp_path / "det.txt", out, n_init=1, interpolate=interpolate)
        rows = rows_of(out)
        assert result["rows_interpolated"] == len(filled)
        assert rows[:, 0].tolist() == sorted(seen + filled) and set(rows[:, 1]) == {1}
        at = np.isin(rows[:, 0], filled)
        truth = person[rows[at, 0].astype(int) - 1]
        assert np.allclose(rows[at, 2:4], truth[:, :2], atol=0.006)
        assert np.allclose(rows[at, 4:6], truth[:, 2:] - truth[:, :2], atol=0.006)


def test_interpolate_gaps_by_hand():
    rows = np.array([[1, 1, 0, 0, 10, 20, 0.9, -1, -1, -1],
                     [4, 1, 30, 6, 40, 20, 0.6, -1, -1, -1],
                     [2, 2, 100, 0, 10, 10, 0.8, -1, -1, -1],   # track 2 ends at frame 2 ...
                     [5, 3, 200, 0, 10, 10, 0.8, -1, -1, -1]])  # ... track 3 starts at 5: no fill across ids
    filled = interpolate_gaps(rows, 2)
    assert np.allclose(filled[:, :7], [[2, 1, 10, 2, 20, 20, 0.6], [3, 1, 20, 4, 30, 20, 0.6]])
    assert (filled[:, 7:] == -1).all()
    assert len(interpolate_gaps(rows, 1)) == 0 and len(interpolate_gaps(rows, 0)) == 0


def test_defaults_are_the_online_trackers_output_byte_for_byte(tmp_path):
    gt, det = synthetic_scene(seed=2, frames=80)
    write_mot(tmp_path / "det.txt", det)
    det = read_mot(tmp_path / "det.txt")  # as written: two decimals
    tracker, online = Tracker(output_conf=0.7), []
    for frame in range(1, int(det[:, 0].max()) + 1):
        d = det[det[:, 0] == frame]
        out = tracker.update(Detections.of(np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1), d[:, 6]))
        online += [[frame, i, b[0], b[1], b[2] - b[0], b[3] - b[1], s, -1, -1, -1]
                   for b, i, s in zip(out.boxes, out.ids, out.scores)]
    write_mot(tmp_path / "online.txt", np.array(online))
    track_detections(tmp_path / "det.txt", tmp_path / "default.txt", output_conf=0.7)
    track_detections(tmp_path / "det.txt", tmp_path / "off.txt", output_conf=0.7, backfill=False, interpolate=0)
    expected = (tmp_path / "online.txt").read_bytes()
    assert (tmp_path / "default.txt").read_bytes() == expected == (tmp_path / "off.txt").read_bytes()


@pytest.mark.parametrize("key, value, message", [
    ("interpolate", -1, "interpolate=-1 is out of range"),
    ("interpolate", 1.5, "interpolate=1.5 has the wrong type"),
    ("interpolate", True, "interpolate=True has the wrong type"),
    ("backfill", "maybe", "backfill='maybe' has the wrong type"),
    ("interpolat", 2, "unknown key 'interpolat'; did you mean 'interpolate'"),
])
def test_bad_refine_values_are_rejected_naming_the_key(tmp_path, key, value, message):
    write_mot(tmp_path / "det.txt", np.array([[1, -1, 10, 10, 20, 40, 0.9, -1, -1, -1]]))
    with pytest.raises(ConfigError, match=message):
        track_detections(tmp_path / "det.txt", tmp_path / "res.txt", **{key: value})


def test_track_command_refines_only_with_detections(tmp_path, capsys):
    gt, det = synthetic_scene(seed=3, frames=40, people=3)
    write_mot(tmp_path / "det.txt", det[det[:, 0] > 1])  # every track starts tentative
    code = main(["track", f"detections={tmp_path / 'det.txt'}", f"out={tmp_path / 'res.txt'}", "n_init=4",
                 "backfill=true", "interpolate=3", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["rows_backfilled"] > 0 and report["rows_interpolated"] > 0
    assert len(rows_of(tmp_path / "res.txt")) > 0
    assert main(["track", "source=missing.mp4", "model=det.tflite", "interpolate=4"]) == 2
    assert "interpolate works only with detections=" in capsys.readouterr().err
    assert main(["track", f"detections={tmp_path / 'det.txt'}", f"out={tmp_path / 'r.txt'}", "interpolate=-2"]) == 2
    assert "interpolate=-2 is out of range" in capsys.readouterr().err


def test_refinement_beats_the_online_run_on_tud_campus(tmp_path, shared_data):
    seq = shared_data / "mot15" / "TUD-Campus"
    if not (seq / "det" / "det.txt").is_file():
        pytest.skip(f"MOT15 TUD-Campus not available under {seq}")
    track_detections(seq / "det" / "det.txt", tmp_path / "online.txt")
    refined = track_detections(seq / "det" / "det.txt", tmp_path / "refined.txt", backfill=True, interpolate=4)
    online = score_files(seq / "gt" / "gt.txt", tmp_path / "online.txt").metrics()
    offline = score_files(seq / "gt" / "gt.txt", tmp_path / "refined.txt").metrics()
    assert refined["rows_backfilled"] > 0 and refined["rows_interpolated"] > 0
    assert offline["MOTA"] > online["MOTA"] and offline["IDF1"] > online["IDF1"], (online, offline)
