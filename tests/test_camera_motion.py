"""Camera-motion compensation: the moving-camera synthetic videos, the global motion estimated
from their frames, and tracks that keep their identities when the camera jumps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecnn.data.synth import synth_video
from edgecnn.data.synth.video import CameraPath
from edgecnn.runtime.mot import read_mot
from edgecnn.runtime.tracker import Detections, Tracker
from edgecnn.runtime.tracker.camera_motion import CameraMotion, warp_states


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    root = tmp_path_factory.mktemp("moving")
    fixed = synth_video(root / "fixed", sequences=1, frames=12, width=320, height=240, seed=4, images=True)
    moved = synth_video(root / "moved", sequences=1, frames=12, width=320, height=240, seed=4, images=True,
                        camera_motion=0.15)
    return root, fixed, moved


def test_a_moving_camera_moves_the_ground_truth_with_the_view(moving):
    root, fixed, moved = moving
    seq = fixed["sequences"][0]["dir"]
    still, panned = read_mot(root / "fixed" / seq / "gt" / "gt.txt"), read_mot(root / "moved" / seq / "gt" / "gt.txt")
    assert set(panned[:, 1]) <= set(still[:, 1])  # the same objects, some cut off by the narrower view
    for row in panned[panned[:, 0] == 1]:
        same = still[(still[:, 0] == 1) & (still[:, 1] == row[1])][0]
        assert not np.allclose(row[2:4], same[2:4], atol=1)  # seen through a shifted, zoomed window
    assert (panned[:, 2] >= 0).all() and (panned[:, 2] + panned[:, 4] <= 320 + 1e-6).all()
    assert (panned[:, 3] >= 0).all() and (panned[:, 3] + panned[:, 5] <= 240 + 1e-6).all()


def test_the_estimated_motion_is_the_cameras(moving):
    root, _, moved = moving
    seq_dir = root / "moved" / moved["sequences"][0]["dir"]
    camera = CameraPath(np.random.default_rng([4, 200]), 320, 240, 0.15)  # the generator's own path
    motion = CameraMotion()
    for t in range(1, 13):
        warp = motion.estimate(cv2.imread(str(seq_dir / "img1" / f"{t:06d}.jpg")))
        if t == 1:
            assert np.allclose(warp, np.eye(2, 3))
            continue
        (x0, y0), (x1, y1) = camera.offset(t - 2), camera.offset(t - 1)
        expected = -camera.zoom * np.array([x1 - x0, y1 - y0])
        assert np.allclose(warp[:, :2], np.eye(2), atol=0.02)
        assert np.abs(warp[:, 2] - expected).max() < 1.0, (t, warp[:, 2], expected)


def test_warp_states_moves_positions_and_turns_velocities():
    mean = np.array([[100.0, 50.0, 0.5, 40.0, 2.0, 0.0, 0.0, 1.0]])
    cov = np.eye(8)[None].repeat(1, axis=0)
    quarter = np.array([[0.0, -2.0, 10.0], [2.0, 0.0, -5.0]])  # a quarter turn, twice the size, shifted
    moved, moved_cov = warp_states(mean, cov, quarter)
    assert np.allclose(moved[0], [-90.0, 195.0, 0.5, 80.0, 0.0, 4.0, 0.0, 2.0])
    assert np.allclose(moved_cov[0][:2, :2], 4 * np.eye(2)) and moved_cov[0][2, 2] == 1.0


def test_compensation_keeps_identities_when_the_camera_jumps():
    boxes = np.array([[100, 100, 140, 200], [300, 100, 340, 200]], float)
    jump = np.array([[1.0, 0.0, 45.0], [0.0, 1.0, 0.0]])  # the whole view shifts by more than a box width
    ids = {}
    for name, warp in (("plain", None), ("compensated", jump)):
        tracker = Tracker(n_init=1)
        first = tracker.update(Detections.of(boxes, np.full(2, 0.9)))
        second = tracker.update(Detections.of(boxes + [45, 0, 45, 0], np.full(2, 0.9)), warp=warp)
        ids[name] = (sorted(first.ids), sorted(second.ids))
    assert ids["compensated"][0] == ids["compensated"][1]
    assert ids["plain"][0] != ids["plain"][1]
