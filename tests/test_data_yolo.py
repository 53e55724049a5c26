"""YOLO data.yaml and label parsing: good files, broken files (file:line), backgrounds, corrupt images."""

import logging

import cv2
import numpy as np
import pytest

from edgecnn.data.yolo import iter_samples, label_path, load_data_yaml, parse_label_file, scan_split


def make_image(path, h=48, w=64, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


@pytest.fixture
def dataset(tmp_path):
    """A tiny dataset: two train images with labels, one background, one val image."""
    root = tmp_path / "ds"
    for name in ("a", "b", "bg"):
        make_image(root / "images" / "train" / f"{name}.jpg")
    make_image(root / "images" / "val" / "v.png")
    labels = root / "labels"
    (labels / "train").mkdir(parents=True)
    (labels / "val").mkdir(parents=True)
    (labels / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.1 0.1\n")
    (labels / "train" / "b.txt").write_text("\n2 0.1 0.2 0.05 0.05\n\n")
    (labels / "train" / "bg.txt").write_text("")
    (labels / "val" / "v.txt").write_text("1 0.5 0.5 1.0 1.0\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [cat, dog, bird]\n")
    return root


def test_reads_labels_and_backgrounds(dataset):
    spec = load_data_yaml(dataset / "data.yaml")
    assert spec.names == ("cat", "dog", "bird") and spec.nc == 3 and spec.root == dataset.resolve()
    scan = scan_split(spec, "train")
    assert [p.name for p in scan.images] == ["a.jpg", "b.jpg", "bg.jpg"]
    assert scan.labels[0].dtype == np.float32 and scan.labels[0].shape == (2, 5)
    np.testing.assert_allclose(scan.labels[0][1], [1, 0.25, 0.75, 0.1, 0.1])
    assert scan.labels[1].tolist() == [[2, pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.05), pytest.approx(0.05)]]
    assert scan.backgrounds == 1 and scan.missing_labels == 0 and scan.shapes[0] == (48, 64)
    assert len(scan_split(spec, "val")) == 1


def test_iter_samples_yields_path_and_labels(dataset):
    samples = list(iter_samples(dataset / "data.yaml", "train"))
    assert [(p.name, lb.shape) for p, lb in samples] == [("a.jpg", (2, 5)), ("b.jpg", (1, 5)), ("bg.jpg", (0, 5))]
    assert [p.name for p, _ in iter_samples(load_data_yaml(dataset), "val")] == ["v.png"]


def test_missing_label_file_is_a_background(dataset):
    (dataset / "labels" / "train" / "bg.txt").unlink()
    scan = scan_split(load_data_yaml(dataset), "train")
    assert scan.backgrounds == 1 and scan.missing_labels == 1


def test_names_as_mapping_and_nc_check(dataset):
    yaml = dataset / "data.yaml"
    yaml.write_text("train: images/train\nval: images/val\nnc: 3\nnames:\n  0: cat\n  2: bird\n  1: dog\n")
    assert load_data_yaml(yaml).names == ("cat", "dog", "bird")
    yaml.write_text("train: images/train\nval: images/val\nnames: {0: cat, 2: bird}\n")
    with pytest.raises(ValueError, match="without gaps"):
        load_data_yaml(yaml)
    yaml.write_text("train: images/train\nval: images/val\nnc: 4\nnames: [a, b, c]\n")
    with pytest.raises(ValueError, match="nc=4"):
        load_data_yaml(yaml)


def test_yaml_errors_name_the_file(dataset):
    yaml = dataset / "data.yaml"
    yaml.write_text("train: images/train\nnames: [a]\n")
    with pytest.raises(ValueError, match=r"data\.yaml: missing key 'val'"):
        load_data_yaml(yaml)
    yaml.write_text("train: images/train\nval: images/nowhere\nnames: [a]\n")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_data_yaml(yaml)
    yaml.write_text("train: [images/train\nval: x\n")
    with pytest.raises(ValueError, match=r"data\.yaml:\d+: not valid YAML"):
        load_data_yaml(yaml)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_data_yaml(dataset / "missing.yaml")


def test_split_as_image_list_and_list_of_dirs(dataset):
    (dataset / "train.txt").write_text("# comment\n./images/train/a.jpg\nimages/train/b.jpg\n")
    yaml = dataset / "data.yaml"
    yaml.write_text(f"path: {dataset}\ntrain: train.txt\nval: [images/val, images/train/bg.jpg]\nnames: [a, b, c]\n")
    spec = load_data_yaml(yaml)
    assert [p.name for p in spec.images("train")] == ["a.jpg", "b.jpg"]
    assert sorted(p.name for p in spec.images("val")) == ["bg.jpg", "v.png"]
    (dataset / "train.txt").write_text("images/train/a.jpg\nnotes.doc\n")
    with pytest.raises(ValueError, match=r"train\.txt:2: not an image path"):
        spec.images("train")


def test_label_path_follows_ultralytics(tmp_path):
    assert label_path("/d/images/train/x.jpg").as_posix() == "/d/labels/train/x.txt"
    assert label_path("/images/d/images/train/x.png").as_posix() == "/images/d/labels/train/x.txt"
    assert label_path("/d/imgs/x.jpeg").as_posix() == "/d/imgs/x.txt"


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.5 0.5 0.2", "expected 5 values"),
        ("0 0.5 0.5 0.2 0.2 0.1", "expected 5 values"),
        ("0 0.5 abc 0.2 0.2", "not a number"),
        ("0 0.5 nan 0.2 0.2", "not a finite number"),
        ("3 0.5 0.5 0.2 0.2", "class id 3 is not one of 0..2"),
        ("1.5 0.5 0.5 0.2 0.2", "class id 1.5"),
        ("-1 0.5 0.5 0.2 0.2", "class id -1"),
        ("0 1.2 0.5 0.2 0.2", "normalized to \\[0, 1\\]"),
        ("0 0.5 0.5 -0.1 0.2", "normalized"),
        ("0 0.5 0.5 0 0.2", "width and height must be > 0"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "x.txt"
    path.write_text(f"0 0.5 0.5 0.2 0.2\n\n{line}\n")
    with pytest.raises(ValueError, match=rf"x\.txt:3: .*{message}"):
        parse_label_file(path, nc=3)


def test_rounding_overshoot_is_clipped(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 0.5 0.5 1.00001 0.2\n")
    assert parse_label_file(path, nc=1)[0, 3] == 1.0


def test_repeated_boxes_are_dropped(tmp_path, caplog):
    path = tmp_path / "x.txt"
    path.write_text("1 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.1 0.1\n1 0.5 0.5 0.2 0.2\n")
    labels = parse_label_file(path, nc=2)
    assert labels[:, 0].tolist() == [1, 0] and "dropped 1 repeated box" in caplog.text


def test_bad_label_in_a_split_raises_with_location(dataset):
    (dataset / "labels" / "train" / "b.txt").write_text("2 0.1 0.2 0.05 0.05\n7 0.1 0.2 0.05 0.05\n")
    with pytest.raises(ValueError, match=r"labels/train/b\.txt:2: class id 7"):
        scan_split(load_data_yaml(dataset), "train")


def test_corrupt_images_are_skipped_and_counted(dataset, caplog):
    (dataset / "images" / "train" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (dataset / "images" / "train" / "empty.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        scan = scan_split(load_data_yaml(dataset), "train")
    assert len(scan) == 3 and sorted(p.name for p in scan.corrupt) == ["broken.jpg", "empty.png"]
    assert "skipped 2 unreadable image(s)" in caplog.text and "broken.jpg" in caplog.text


def test_empty_split_is_an_error(dataset):
    for p in (dataset / "images" / "val").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match="no images in val split"):
        scan_split(load_data_yaml(dataset), "val")


def test_coco128_reads(shared_data):
    spec = load_data_yaml(shared_data / "coco128" / "data.yaml")
    assert spec.nc == 80 and spec.names[0] == "person"
    scan = scan_split(spec, "train")
    assert len(scan) == 128 and not scan.corrupt
    label_files = (shared_data / "coco128" / "labels" / "train2017").glob("*.txt")
    lines = [ln for f in label_files for ln in f.read_text().splitlines() if ln.strip()]
    assert sum(len(lb) for lb in scan.labels) == len(lines) > 900
    assert sum(int((lb[:, 0] == 0).sum()) for lb in scan.labels) == sum(ln.split()[0] == "0" for ln in lines)
    assert scan.missing_labels == 2 and scan.backgrounds == 2
