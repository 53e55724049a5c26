"""`edgecnn data mot`: annotated MOT sequences (frames or a video) → a YOLO dataset plus the
held-back frames as a MOT sequence to track."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecnn.commands import data as data_command
from edgecnn.config import ConfigError
from edgecnn.data.synth import synth_video
from edgecnn.data.yolo import load_data_yaml, scan_split
from edgecnn.runtime.mot import read_mot


def run(**keys):
    return data_command.run(data_command.KEYS.resolve({"action": "mot", **keys}))


def hand_made(tmp_path):
    """Four 100x80 frames; gt with a box cut by the border, an ignore row, a distractor and MOT15's -1 class."""
    seq = tmp_path / "src" / "CAM-01"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    for f in range(1, 5):
        cv2.imwrite(str(seq / "img1" / f"{f:06d}.jpg"), np.full((80, 100, 3), 40 * f, np.uint8))
    rows = []
    for f in range(1, 5):
        rows += [f"{f},1,-10,10,30,40,1,-1,-1,-1",   # MOT15 style: no class, no visibility; half outside
                 f"{f},2,50,20,20,30,0,1,1,-1",      # conf 0: ignore
                 f"{f},3,60,40,10,20,1,8,1,-1",      # class 8 (a distractor): not in names
                 f"{f},4,70,50,10,10,1,1,0.2,-1"]    # barely visible
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return tmp_path / "src"


def test_ignore_rows_other_classes_and_the_border_are_handled(tmp_path):
    result = run(source=str(hand_made(tmp_path)), out=str(tmp_path / "ds"), names=["pedestrian"],
                 train_frames="1-2", val_frames="3-3", min_visibility=0.3)
    spec = load_data_yaml(result["artifacts"]["data_yaml"])
    assert list(spec.names) == ["pedestrian"]
    train = scan_split(spec, "train")
    assert len(train.images) == 2
    for labels in train.labels:  # only the clipped box of id 1: x from 0 to 20 of 100, y 10 to 50 of 80
        assert np.allclose(labels, [[0, 0.1, 0.375, 0.2, 0.5]], atol=1e-5)
    test = read_mot(result["artifacts"]["test_gt"])
    assert sorted(set(test[:, 0])) == [1] and len(test) == 4  # frame 4, renumbered, every row kept for scoring
    capture = cv2.VideoCapture(result["artifacts"]["test_video"])
    assert capture.read()[0] and not capture.read()[0]


def test_a_video_sequence_becomes_train_val_and_a_test_video(tmp_path):
    synth_video(tmp_path / "v", sequences=1, frames=20, width=320, height=240, seed=2)  # mp4 only, no img1/
    result = run(source=str(tmp_path / "v"), out=str(tmp_path / "ds"), names=["person", "car", "sign", "ball", "box"])
    spec = load_data_yaml(result["artifacts"]["data_yaml"])
    scans = {s: scan_split(spec, s) for s in ("train", "val")}
    assert (len(scans["train"].images), len(scans["val"].images)) == (12, 4)  # 60 % / 20 % of 20 frames
    gt = read_mot(next((tmp_path / "v").rglob("gt.txt")))
    usable = gt[(gt[:, 6] == 1) & (gt[:, 0] <= 12)]
    assert sum(len(rows) for rows in scans["train"].labels) == len(usable)
    assert set(np.concatenate(scans["train"].labels)[:, 0].astype(int)) <= set(range(5))
    test = read_mot(result["artifacts"]["test_gt"])
    assert test[:, 0].min() == 1 and test[:, 0].max() == 4
    assert np.allclose(test[test[:, 0] == 1, 2:6], gt[gt[:, 0] == 17, 2:6])


def test_a_bad_frame_range_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="train_frames"):
        run(source=str(hand_made(tmp_path)), out=str(tmp_path / "ds"), train_frames="5-2")
