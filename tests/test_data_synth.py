"""Synthetic datasets: deterministic by seed, labels that match the pixels, MOT ground truth that
matches the video."""

import configparser

import cv2
import numpy as np
import pytest

from edgecnn.data import scene
from edgecnn.data.imagefolder import load_imagefolder, scan_folder
from edgecnn.data.synth import synth_classify, synth_detect, synth_reid, synth_video
from edgecnn.data.synth.dataset import MIN_VISIBILITY
from edgecnn.data.yolo import load_data_yaml, scan_split
from edgecnn.fileio import sha256_tree
from edgecnn.runtime.mot import read_mot


def tree_without_record(root):
    """Hash of a dataset's files, leaving out synth.json (it records the generation time)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "synth.json"}


@pytest.fixture(scope="module")
def detect_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("det") / "synth"
    synth_detect(root, n=40, imgsz=160, seed=3)
    return root


def test_detect_is_a_valid_yolo_dataset(detect_set):
    spec = load_data_yaml(detect_set / "data.yaml")
    assert spec.names == scene.CLASSES
    train, val = scan_split(spec, "train"), scan_split(spec, "val")
    assert len(train) == 40 and len(val) == 10 and not train.corrupt
    boxes = np.concatenate(train.labels + val.labels)
    assert set(boxes[:, 0].astype(int)) == set(range(len(scene.CLASSES)))  # every class shows up
    assert max(train.shapes[i][0] for i in range(len(train))) <= 160 and len(set(train.shapes)) > 1
    sizes = np.sqrt(boxes[:, 3] * boxes[:, 4]) * 160
    assert sizes.min() < 16 and sizes.max() > 60  # small to large


def test_detect_same_seed_same_bytes_other_seed_differs(detect_set, tmp_path):
    again = tmp_path / "again"
    synth_detect(again, n=40, imgsz=160, seed=3)
    assert tree_without_record(again) == tree_without_record(detect_set)
    other = tmp_path / "other"
    synth_detect(other, n=40, imgsz=160, seed=4)
    assert (other / "labels/train/000000.txt").read_text() != (detect_set / "labels/train/000000.txt").read_text()
    assert (other / "images/train/000000.jpg").read_bytes() != (detect_set / "images/train/000000.jpg").read_bytes()


def test_same_config_is_reused_and_force_remakes(detect_set):
    before = (detect_set / "synth.json").stat().st_mtime_ns
    info = synth_detect(detect_set, n=40, imgsz=160, seed=3)
    assert (detect_set / "synth.json").stat().st_mtime_ns == before and info["config"]["seed"] == 3


def test_synth_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="was not made by"):
        synth_detect(tmp_path, n=2, imgsz=64)
    assert (tmp_path / "images" / "mine.jpg").read_bytes() == b"x"
    assert not (tmp_path / ".synth-partial").exists()


def test_keeps_other_files_in_out(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    synth_detect(tmp_path, n=2, imgsz=64)
    synth_detect(tmp_path, n=3, imgsz=64)
    assert (tmp_path / "manifest.json").read_text() == "{}"
    assert len(list((tmp_path / "images" / "train").iterdir())) == 3


def test_labels_are_tight_boxes_of_visible_pixels():
    """Compose two overlapping objects by hand: the hidden part leaves the front object's box."""
    rng = np.random.default_rng(0)
    back = scene.render_object(scene.sample_style("car", rng), 60)
    front = scene.render_object(scene.sample_style("ball", rng), 30)
    layers = [scene.Layer(*back, 10, 20, 0), scene.Layer(*front, 40, 10, 1), scene.Layer(*back, 100, 90, 2)]
    owner = scene.compose(np.zeros((100, 120, 3), np.uint8), layers)
    boxes = scene.visible_boxes(owner, layers)
    ys, xs = np.nonzero(owner == 0)
    assert boxes[0][0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert 0 < boxes[0][1] < 1 and boxes[1][1] == 1.0
    assert boxes[2][1] < 0.2 and boxes[2][0][2] == 120  # cut by the frame: clipped


def test_look_alikes_differ_in_a_detail_only():
    rng = np.random.default_rng(1)
    style = scene.sample_style("person", rng)
    twin = scene.make_look_alike(style, rng)
    differ = [k for k in style if k != "texture" and style[k] != twin[k]]
    assert 1 <= len(differ) <= 2 and twin["shirt"] == style["shirt"]
    a, _ = scene.render_object(style, 120, 0.5)
    b, _ = scene.render_object(twin, 120, 0.5)
    assert a.shape == b.shape and 0 < np.mean(np.any(a != b, axis=2)) < 0.3


@pytest.fixture(scope="module")
def video_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("vid") / "video"
    info = synth_video(root, sequences=2, frames=40, width=320, height=240, seed=5, images=True)
    return root, info


def test_video_layout_and_frame_counts(video_set):
    root, info = video_set
    assert [s["split"] for s in info["sequences"]] == ["train", "test"]
    for seq in info["sequences"]:
        seq_dir = root / seq["dir"]
        ini = configparser.ConfigParser()
        ini.read(seq_dir / "seqinfo.ini")
        assert ini["Sequence"]["seqLength"] == "40" and ini["Sequence"]["imWidth"] == "320"
        capture = cv2.VideoCapture(str(root / seq["video"]))
        frames = 0
        while capture.read()[0]:
            frames += 1
        assert frames == 40 and len(list((seq_dir / "img1").glob("*.jpg"))) == 40
        gt = read_mot(seq_dir / "gt" / "gt.txt")
        assert gt[:, 0].min() >= 1 and gt[:, 0].max() <= 40
        assert len(np.unique(gt[:, 0])) == 40  # three people are always in the first frames, objects in every frame
        assert (gt[:, 2] >= 0).all() and (gt[:, 3] >= 0).all()
        assert (gt[:, 2] + gt[:, 4] <= 320).all() and (gt[:, 3] + gt[:, 5] <= 240).all()
        assert set(np.unique(gt[:, 6])) <= {0.0, 1.0} and ((gt[:, 8] >= 0) & (gt[:, 8] <= 1)).all()
        assert (gt[gt[:, 8] < MIN_VISIBILITY, 6] == 0).all() and (gt[gt[:, 6] == 1, 8] >= MIN_VISIBILITY).all()
        assert set(np.unique(gt[:, 7]).astype(int)) <= set(range(1, len(scene.CLASSES) + 1))
        assert not np.any(np.unique(gt[:, :2], axis=0, return_counts=True)[1] > 1)  # one row per id and frame
        assert seq["twins"], "each sequence has look-alike objects"


def test_video_gt_follows_the_pixels(video_set):
    """The mp4 holds the img1 frames, and pixels change inside moving objects' boxes, not outside."""
    root, info = video_set
    seq_dir = root / info["sequences"][0]["dir"]
    capture = cv2.VideoCapture(str(seq_dir / f"{seq_dir.name}.mp4"))
    decoded = [capture.read()[1] for _ in range(40)]
    first, last = (cv2.imread(str(seq_dir / "img1" / f"{t:06d}.jpg")) for t in (1, 40))
    assert cv2.PSNR(decoded[0], first) > 25 and cv2.PSNR(decoded[39], last) > 25
    gt = read_mot(seq_dir / "gt" / "gt.txt")
    covered = np.zeros(first.shape[:2], bool)
    for r in gt[np.isin(gt[:, 0], [1, 40])]:
        x, y, w, h = map(int, r[2:6])
        covered[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = True
    change = np.abs(first.astype(int) - last.astype(int)).max(axis=2)
    assert covered.any() and not covered.all()
    assert np.percentile(change[~covered], 99) < 40  # only noise and light drift outside boxes
    assert change[covered].mean() > 3 * change[~covered].mean()


def test_video_is_deterministic(video_set, tmp_path):
    root, info = video_set
    again = synth_video(tmp_path / "v", sequences=2, frames=40, width=320, height=240, seed=5, images=True)
    for seq in info["sequences"]:
        assert (tmp_path / "v" / seq["dir"] / "gt" / "gt.txt").read_bytes() == (root / seq["dir"] / "gt" / "gt.txt").read_bytes()
        assert sha256_tree(tmp_path / "v" / seq["dir"] / "img1") == sha256_tree(root / seq["dir"] / "img1")
    assert again["sequences"][0]["twins"] == info["sequences"][0]["twins"]


def test_people_who_become_hidden_sometimes_wait_there():
    from edgecnn.data.synth.video import WAIT_FRAMES, VideoScene

    still_frames = 0
    for seed in range(6):
        world = VideoScene(np.random.default_rng(seed), 240, 320, 120)
        for t in range(120):
            waiting = {tr.ident: tr.x for tr in world.tracks if tr.wait}
            world.render(t)
            for tr in world.tracks:
                assert tr.wait <= WAIT_FRAMES[1] and (not tr.wait or scene.CLASSES[tr.cls] == "person")
                if tr.ident in waiting:
                    assert tr.x == waiting[tr.ident]
                    still_frames += 1
    assert still_frames >= WAIT_FRAMES[0], "no person in six scenes ever stopped behind anything"


def test_classify_digits(tmp_path):
    info = synth_classify(tmp_path / "d", n=50, imgsz=32, seed=1)
    spec = load_imagefolder(tmp_path / "d")
    assert spec.names == tuple("0123456789") and info["splits"]["val"]["images"] == 12
    train = scan_folder(spec, "train")
    assert train.counts(10) == [5] * 10 and set(train.shapes) == {(32, 32)}
    synth_classify(tmp_path / "e", n=50, imgsz=32, seed=1)
    assert tree_without_record(tmp_path / "d") == tree_without_record(tmp_path / "e")
    a = cv2.imread(str(train.images[0])).astype(int)
    assert a.std() > 10  # a glyph, not a flat image


def test_reid_identities_are_disjoint_and_deterministic(tmp_path):
    info = synth_reid(tmp_path / "a", n=20, per_id=4, seed=2)
    train = {p.name for p in (tmp_path / "a" / "train").iterdir()}
    val = {p.name for p in (tmp_path / "a" / "val").iterdir()}
    assert len(train) == 16 and len(val) == 4 and not train & val
    assert all(len(list((tmp_path / "a" / s / i).iterdir())) == 4 for s, ids in (("train", train), ("val", val)) for i in ids)
    assert info["twins"] and set(info["classes"].values()) <= {"person", "car", "box"}
    synth_reid(tmp_path / "b", n=20, per_id=4, seed=2)
    assert tree_without_record(tmp_path / "a") == tree_without_record(tmp_path / "b")


def test_detect_with_fewer_classes(detect_set, tmp_path):
    all_named = tmp_path / "all"
    synth_detect(all_named, n=40, imgsz=160, seed=3, classes=list(scene.CLASSES))
    assert tree_without_record(all_named) == tree_without_record(detect_set)  # the same draws as classes=None
    two = tmp_path / "two"
    synth_detect(two, n=40, imgsz=160, seed=3, classes=["person", "car"])
    assert load_data_yaml(two / "data.yaml").names == ("person", "car")
    labels = np.concatenate(scan_split(load_data_yaml(two / "data.yaml"), "train").labels)
    assert set(np.unique(labels[:, 0]).astype(int)) == {0, 1}
    with pytest.raises(ValueError, match="unknown: dog"):
        synth_detect(tmp_path / "bad", n=4, imgsz=160, classes=["person", "dog"])


def test_video_with_fewer_classes(tmp_path):
    info = synth_video(tmp_path / "v", sequences=1, frames=10, width=320, height=240, seed=1, classes=["person", "car"])
    gt = read_mot(tmp_path / "v" / info["sequences"][0]["dir"] / "gt" / "gt.txt")
    assert info["names"] == ["person", "car"] and set(np.unique(gt[:, 7]).astype(int)) <= {1, 2}
    with pytest.raises(ValueError, match="need 'person'"):
        synth_video(tmp_path / "w", sequences=1, frames=2, classes=["car"])
