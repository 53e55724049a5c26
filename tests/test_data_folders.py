"""ImageFolder reading, stratified calibration sampling and ReID identity crops."""

import json
import shutil

import cv2
import numpy as np
import pytest

from edgecnn.data.calib import allocate, calibration_images, sample_calibration
from edgecnn.data.crops import cut_identity_crops, find_sequences
from edgecnn.data.imagefolder import load_imagefolder, scan_folder
from edgecnn.data.synth import synth_video
from edgecnn.runtime.mot import read_mot


def image(path, value=128, size=(24, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(value).integers(-20, 20, (*size, 3))
    cv2.imwrite(str(path), np.clip(value + noise, 0, 255).astype(np.uint8))
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "shapes"
    for split, count in (("train", 4), ("val", 2)):
        for cls in ("circle", "square"):
            for i in range(count):
                image(root / split / cls / f"{i}.png", 40 + 50 * i)
    return root


def test_imagefolder_reads_classes_and_targets(folder):
    spec = load_imagefolder(folder)
    assert spec.names == ("circle", "square") and set(spec.splits) == {"train", "val"}
    scan = scan_folder(spec, "train")
    assert len(scan) == 8 and scan.counts(2) == [4, 4] and scan.targets[:4] == [0] * 4


def test_class_missing_from_train_is_an_error_unless_splits_differ_by_design(folder):
    image(folder / "val" / "triangle" / "0.png")
    with pytest.raises(ValueError, match=r"val/triangle: class 'triangle' is not in"):
        load_imagefolder(folder)
    spec = load_imagefolder(folder, shared_classes=False)
    assert spec.names == ("circle", "square")
    scan = scan_folder(spec, "val")
    assert scan.names == ("circle", "square", "triangle") and scan.targets[-1] == 2


def test_layout_errors_name_the_path(folder):
    (folder / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match=r"train/empty: class folder has no images"):
        scan_folder(load_imagefolder(folder), "train")
    image(folder / "train" / "stray.png")
    with pytest.raises(ValueError, match=r"stray\.png: images must sit in one folder per class"):
        load_imagefolder(folder)
    with pytest.raises(FileNotFoundError, match="no split folder"):
        load_imagefolder(folder / "train" / "circle")


def test_imagefolder_skips_corrupt(folder, caplog):
    (folder / "train" / "circle" / "bad.jpg").write_bytes(b"garbage")
    scan = scan_folder(load_imagefolder(folder), "train")
    assert len(scan) == 8 and [p.name for p in scan.corrupt] == ["bad.jpg"]
    assert "skipped 1 unreadable" in caplog.text


def test_allocate_is_proportional_and_covers_every_stratum():
    quota = allocate({"a": 80, "b": 15, "c": 4, "d": 1}, 20)
    assert sum(quota.values()) == 20 and quota["d"] == 1 and quota["c"] == 1 and quota["a"] > 3 * quota["b"]
    quota = allocate(dict.fromkeys("abcdef", 1) | {"big": 50}, 3)
    assert sum(quota.values()) == 3 and quota["big"] == 1
    assert allocate({"a": 2, "b": 2}, 10) == {"a": 2, "b": 2}


def test_calibration_is_stratified_over_class_and_light(tmp_path):
    """90% bright images of one class: a random pick of 10 would often miss the dark, rare ones."""
    root = tmp_path / "ds"
    for i in range(54):
        image(root / "train" / "common" / f"{i}.png", 200)
    for i in range(3):
        image(root / "train" / "common" / f"dark{i}.png", 20)
        image(root / "train" / "rare" / f"{i}.png", 120)
    info = sample_calibration(root, tmp_path / "calib", n=10, seed=0)
    chosen = [item["source"] for item in info["images"]]
    assert info["n"] == 10 and len(set(chosen)) == 10
    assert any("rare" in c for c in chosen) and any("dark" in c for c in chosen)
    assert sum(v["chosen"] for v in info["strata"].values()) == 10
    files = calibration_images(tmp_path / "calib")
    assert len(files) == 10 and all(f.is_file() for f in files)
    assert json.loads((tmp_path / "calib" / "calib.json").read_text())["images"][0]["file"].startswith("images/")
    again = sample_calibration(root, tmp_path / "calib2", n=10, seed=0)
    assert [i["source"] for i in again["images"]] == chosen
    assert [i["source"] for i in sample_calibration(root, tmp_path / "calib3", n=10, seed=1)["images"]] != chosen


def test_calibration_of_a_detection_set_covers_classes(tmp_path):
    from edgecnn.data.synth import synth_detect

    synth_detect(tmp_path / "det", n=60, imgsz=96, seed=2)
    info = sample_calibration(tmp_path / "det" / "data.yaml", tmp_path / "calib", n=20)
    assert info["task"] == "detect" and info["n"] == 20
    assert all(count > 0 for count in info["images_per_class"].values())
    assert len(list((tmp_path / "calib" / "images").iterdir())) == 20
    smaller = sample_calibration(tmp_path / "det" / "data.yaml", tmp_path / "calib", n=5)  # refresh in place
    assert smaller["n"] == 5 and len(list((tmp_path / "calib" / "images").iterdir())) == 5


def test_calibration_from_a_plain_folder(tmp_path):
    for i in range(12):
        image(tmp_path / "frames" / f"{i:02d}.jpg", 10 + 20 * i)
    info = sample_calibration(tmp_path / "frames", tmp_path / "calib", n=6)
    assert info["task"] == "images" and info["n"] == 6 and len(info["strata"]) == 6  # brightness 3 x contrast 2
    levels = sorted(i["brightness"] for i in info["images"])
    assert levels[0] < 0.35 and levels[-1] > 0.65  # dark and bright both in


def test_calibration_of_coco128(shared_data, tmp_path):
    info = sample_calibration(shared_data / "coco128" / "data.yaml", tmp_path / "calib", n=40)
    assert info["n"] == 40 and info["images_per_class"]["person"] > 0
    assert len(calibration_images(tmp_path / "calib")) == 40


@pytest.fixture(scope="module")
def mot_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("mot")
    synth_video(root / "video", sequences=2, frames=30, width=320, height=240, seed=7, images=True)
    return root / "video"


def test_crops_split_identities(mot_source, tmp_path):
    info = cut_identity_crops(mot_source, tmp_path / "reid", val_fraction=0.3, step=2, max_per_id=10)
    train = {p.name for p in (tmp_path / "reid" / "train").iterdir()}
    val = {p.name for p in (tmp_path / "reid" / "val").iterdir()}
    assert train and val and not train & val
    assert info["identities"] == len(train | val) and info["splits"]["val"]["identities"] == len(val)
    counts = [len(list(d.iterdir())) for d in (tmp_path / "reid" / "train").iterdir()]
    assert min(counts) >= 2 and max(counts) <= 10 and sum(counts) == info["splits"]["train"]["crops"]
    spec = load_imagefolder(tmp_path / "reid", shared_classes=False)
    assert len(scan_folder(spec, "val").names) == len(val)


@pytest.mark.parametrize("frames_from", ["img1", "mp4"])
def test_crop_matches_its_gt_box(mot_source, tmp_path, frames_from):
    source = tmp_path / "mot"
    shutil.copytree(mot_source, source)
    for seq in find_sequences(source):
        if frames_from == "mp4":
            shutil.rmtree(seq / "img1")
        else:
            (seq / f"{seq.name}.mp4").unlink()
    cut_identity_crops(source, tmp_path / "reid", val_fraction=0.0, step=1, max_per_id=1000, min_visibility=0.0)
    seq = find_sequences(source)[-1]
    gt = read_mot(seq / "gt" / "gt.txt")
    row = gt[gt[:, 6] == 1][0]
    crop = cv2.imread(str(tmp_path / "reid" / "train" / f"{seq.name}_{int(row[1]):04d}" / f"{int(row[0]):06d}.jpg"))
    assert crop is not None and abs(crop.shape[1] - row[4]) <= 1 and abs(crop.shape[0] - row[5]) <= 1


def test_crops_need_ground_truth(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sequence with gt/gt.txt"):
        cut_identity_crops(tmp_path, tmp_path / "out")


def test_open_dataset_decides_data_yaml_or_imagefolder_once(folder, tmp_path):
    from edgecnn.data import dataset_format, open_dataset, open_task_dataset
    from edgecnn.data.imagefolder import ImageFolderSpec
    from edgecnn.data.yolo import DatasetSpec

    assert dataset_format(folder) == "imagefolder" and isinstance(open_dataset(folder), ImageFolderSpec)
    # a data.yaml wins over split folders that look like an ImageFolder
    (folder / "data.yaml").write_text("path: .\ntrain: train\nval: val\nnames: [circle, square]\n")
    for path in (folder, folder / "data.yaml"):
        assert dataset_format(path) == "yolo" and isinstance(open_dataset(path), DatasetSpec)
    with pytest.raises(ValueError, match="the classify task needs an ImageFolder"):
        open_task_dataset(folder, "classify")
    with pytest.raises(FileNotFoundError, match="dataset not found: .*none"):
        open_dataset(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a data.yaml nor an ImageFolder"):
        open_dataset(tmp_path / "empty")
