"""DetectionMetrics against pycocotools' COCOeval on random fixtures (to 1e-3)."""

import contextlib
import io

import numpy as np
import pytest

from edgecnn.metrics.detection import DetectionMetrics
from edgecnn.runtime.boxes import cxcywh_to_xyxy, iou_matrix, tlwh_to_xyxy, xyxy_to_tlwh

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def make_fixture(seed: int, n_images: int = 30, num_classes: int = 4):
    """Ground truth plus noisy, missing and spurious detections, with rounded scores so ties occur."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        n = rng.integers(0, 8)
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(8, 120, (n, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        gt_cls = rng.integers(0, num_classes - 1, n)  # the last class never has ground truth
        keep = rng.random(n) > 0.2
        noise = rng.normal(0, 0.12, (n, 4)) * np.repeat(wh, 2, axis=1)
        det = (gt + noise)[keep]
        det_cls = np.where(rng.random(keep.sum()) < 0.1, rng.integers(0, num_classes, keep.sum()), gt_cls[keep])
        m = rng.integers(0, 5)
        xy = rng.uniform(0, 400, (m, 2))
        spurious = np.concatenate([xy, xy + rng.uniform(8, 120, (m, 2))], 1)
        det = np.concatenate([det, spurious])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        det_cls = np.concatenate([det_cls, rng.integers(0, num_classes, m)])
        scores = np.round(rng.uniform(0.05, 1, len(det)), 2)
        images.append((det, scores, det_cls, gt, gt_cls))
    return images, num_classes


def coco_reference(images, num_classes):
    gt_json = {"images": [], "annotations": [], "categories": [{"id": c + 1} for c in range(num_classes)]}
    dets = []
    for i, (det, scores, det_cls, gt, gt_cls) in enumerate(images):
        gt_json["images"].append({"id": i + 1})
        for box, c in zip(gt, gt_cls):
            w, h = box[2] - box[0], box[3] - box[1]
            gt_json["annotations"].append({"id": len(gt_json["annotations"]) + 1, "image_id": i + 1,
                                           "category_id": int(c) + 1, "bbox": [*box[:2], w, h],
                                           "area": w * h, "iscrowd": 0})
        for box, s, c in zip(det, scores, det_cls):
            dets.append({"image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [*box[:2], box[2] - box[0], box[3] - box[1]], "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, 2]  # T, R, K at area all, maxDets 100
    per_class = [np.mean(precision[:, :, k][precision[:, :, k] > -1]) if (precision[:, :, k] > -1).any() else None
                 for k in range(num_classes)]
    return ev.stats[0], ev.stats[1], per_class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools(seed):
    images, nc = make_fixture(seed)
    metrics = DetectionMetrics(nc)
    for image in images:
        metrics.update(*image)
    result = metrics.compute()
    ref_map, ref_map50, ref_per_class = coco_reference(images, nc)
    assert result["mAP50_95"] == pytest.approx(ref_map, abs=1e-3)
    assert result["mAP50"] == pytest.approx(ref_map50, abs=1e-3)
    for c, ref in enumerate(ref_per_class):
        if ref is not None:
            assert result["per_class"][str(c)]["AP50_95"] == pytest.approx(ref, abs=1e-3)
    assert 0 < result["mAP50_95"] < result["mAP50"] < 1


def test_perfect_predictions_score_one():
    gt = np.array([[10, 10, 50, 60], [100, 100, 150, 180.0]])
    metrics = DetectionMetrics(2, names=["a", "b"])
    metrics.update(gt, [0.9, 0.8], [0, 1], gt, [0, 1])
    result = metrics.compute()
    assert result["mAP50_95"] == pytest.approx(1.0)
    assert result["precision"] == pytest.approx(1.0) and result["recall"] == pytest.approx(1.0)
    assert result["per_class"]["b"]["n_gt"] == 1
    assert len(result["curves"]["precision"]["a"]) == 101


def test_precision_recall_at_operating_point():
    # one class, 4 ground truths: 2 found with high scores, 2 false positives with low scores
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10.0]])
    det = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [200, 200, 210, 210], [300, 300, 310, 310.0]])
    metrics = DetectionMetrics(1)
    metrics.update(det, [0.9, 0.8, 0.3, 0.2], [0, 0, 0, 0], gt, [0, 0, 0, 0])
    result = metrics.compute()
    assert result["precision"] == pytest.approx(1.0)
    assert result["recall"] == pytest.approx(0.5)
    assert 0.3 < result["conf_best_f1"] <= 0.8


def test_bad_input_is_a_clear_error():
    metrics = DetectionMetrics(2)
    with pytest.raises(ValueError, match="out of range"):
        metrics.update(np.zeros((1, 4)), [0.5], [2], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="disagree"):
        metrics.update(np.zeros((2, 4)), [0.5], [0], np.zeros((0, 4)), [])


def test_box_geometry():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    assert iou_matrix([[0, 0, 10, 10]], [[20, 20, 30, 30], [0, 0, 0, 0]]).tolist() == [[0.0, 0.0]]
    xyxy = np.array([[2.0, 4.0, 12.0, 24.0]])
    assert xyxy_to_tlwh(xyxy).tolist() == [[2, 4, 10, 20]] and (tlwh_to_xyxy(xyxy_to_tlwh(xyxy)) == xyxy).all()
    assert cxcywh_to_xyxy(np.array([[7.0, 14.0, 10.0, 20.0]])).tolist() == xyxy.tolist()
