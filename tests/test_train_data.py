"""Box-aware augmentation, mosaic, loaders and samplers on real image files."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from edgecnn.data.augment import DEFAULTS, ClassificationAugment, DetectionAugment, mosaic
from edgecnn.data.loaders import (ClassificationDataset, DetectionDataset, PKBatchSampler, SeededSampler,
                                  collate_detection, seeded)

COLORS = {0: (255, 0, 0), 1: (0, 255, 0)}  # RGB per class


@pytest.fixture(scope="module")
def boxes_dataset(tmp_path_factory):
    """Images with solid class-coloured rectangles on grey, and their YOLO labels."""
    root = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(6):
        h, w = (240, 320) if i % 2 else (300, 200)
        image = np.full((h, w, 3), 90, np.uint8)
        rows = []
        for k in range(3):
            bw, bh = rng.integers(30, 70, 2)
            x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
            c = k % 2
            image[y0:y0 + bh, x0:x0 + bw] = COLORS[c]
            rows.append([c, (x0 + bw / 2) / w, (y0 + bh / 2) / h, bw / w, bh / h])
        path = root / f"{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        images.append(path)
        labels.append(np.array(rows, np.float32))
    return images, labels


def assert_boxes_on_their_colour(image: torch.Tensor, targets: torch.Tensor):
    assert len(targets) > 0
    for c, x1, y1, x2, y2 in targets.tolist():
        cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
        pixel = image[:, cy, cx].tolist()
        assert np.abs(np.array(pixel) - COLORS[int(c)]).max() < 40, (pixel, c)


def test_letterboxed_boxes_land_on_their_objects(boxes_dataset):
    ds = DetectionDataset(*boxes_dataset, imgsz=160)
    for i in range(len(ds)):
        image, targets, index = ds[i]
        assert image.shape == (3, 160, 160) and image.dtype == torch.uint8 and index == i
        assert_boxes_on_their_colour(image, targets)


def test_augmented_and_mosaic_boxes_follow_the_pixels(boxes_dataset):
    geometric = replace(DEFAULTS["detect"], hsv_h=0, hsv_s=0, hsv_v=0, degrees=0, scale=0.3, mosaic=1.0)
    ds = DetectionDataset(*boxes_dataset, imgsz=160, augment=DetectionAugment(geometric), mosaic=1.0)
    seen = 0
    for seed in range(12):
        image, targets, _ = ds[(seed % len(ds), seed)]
        assert image.shape == (3, 160, 160)
        if len(targets):
            assert_boxes_on_their_colour(image, targets)
            assert (targets[:, 3] > targets[:, 1]).all() and targets[:, 1:].min() >= 0 and targets[:, 1:].max() <= 160
            seen += 1
    assert seen >= 8


def test_a_seed_fixes_the_augmentation(boxes_dataset):
    ds = DetectionDataset(*boxes_dataset, imgsz=128, augment=DetectionAugment(DEFAULTS["detect"]), mosaic=0.5)
    a, b, c = ds[(1, 7)], ds[(1, 7)], ds[(1, 8)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    before = torch.get_rng_state()
    ds[(2, 3)]
    assert torch.equal(before, torch.get_rng_state())  # the global generator is left alone


def test_mosaic_keeps_boxes_of_all_four_images():
    tiles = []
    for k in range(4):
        image = torch.full((3, 64, 64), 90, dtype=torch.uint8)
        image[:, 16:48, 16:48] = 200
        tiles.append((image, torch.tensor([[16.0, 16, 48, 48]]), torch.tensor([k])))
    torch.manual_seed(0)
    image, boxes, labels = mosaic(tiles, 64)
    assert image.shape == (3, 64, 64) and len(boxes) == len(labels) >= 1
    for x1, y1, x2, y2 in boxes.tolist():
        assert (image[:, int(y1):int(y2), int(x1):int(x2)] == 200).all()


def test_classification_augment_and_dataset(boxes_dataset):
    images, _ = boxes_dataset
    ds = ClassificationDataset([(p, i % 2) for i, p in enumerate(images)], (48, 32),
                               ClassificationAugment(DEFAULTS["classify"]))
    image, label, _ = ds[(0, 1)]
    assert image.shape == (3, 48, 32) and label == 0
    assert not torch.equal(image, ds[0][0])  # the seeded key augments, the plain index does not


def test_seeded_draws_as_manual_seed_and_restores_the_callers_state():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with seeded(123):
        drawn = torch.rand(4)
    assert torch.equal(drawn, expected)
    assert torch.equal(torch.get_rng_state(), before)


def test_collate_and_samplers(boxes_dataset):
    ds = DetectionDataset(*boxes_dataset, imgsz=96)
    images, targets, indices = collate_detection([ds[0], ds[1], ds[2]])
    assert images.shape == (3, 3, 96, 96) and targets.shape == (9, 6)
    assert targets[:, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    shards = [list(SeededSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=1)) for r in (0, 1)]
    assert sorted(i for shard in shards for i, _ in shard) == list(range(6))
    pk = PKBatchSampler([0, 0, 0, 1, 1, 2, 2, 2, 3], p=2, k=3, seed=0)
    batches = list(pk)
    assert len(batches) == len(pk) == 2
    for batch in batches:
        ids = [[0, 0, 0, 1, 1, 2, 2, 2, 3][i] for i, _ in batch]
        assert len(batch) == 6 and len(set(ids)) == 2 and all(ids.count(x) == 3 for x in set(ids))
    # Few identities with many crops each (a handful of videos): an epoch still sees about every crop.
    many = PKBatchSampler(np.repeat(np.arange(4), 50), p=2, k=4, seed=0)
    assert len(many) == len(list(many)) == 200 // 8
