"""The detector's operating point: measured from its own scores, carried in the artifact, used by
`edgecnn track` unless the user sets the keys."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from edgecnn.metrics.operating_point import N_INIT_MAX, N_INIT_MIN, ScoreCurve, operating_point
from edgecnn.runtime.tracker import TRACKER_KEYS
from edgecnn.runtime.tracker.defaults import DETECTOR_FALLBACK, resolve
from runtime_models import exported_models


def scored(true_scores, false_scores, n_gt):
    scores = np.concatenate([true_scores, false_scores])
    tp = np.concatenate([np.ones(len(true_scores), bool), np.zeros(len(false_scores), bool)])
    order = np.argsort(-scores, kind="mergesort")
    return scores[order], tp[order], n_gt


def test_thresholds_follow_the_detectors_own_score_scale():
    rng = np.random.default_rng(0)
    # a detector whose real boxes score 0.2-0.5 and false ones 0.01-0.25: MOT15's 0.5 would keep nothing
    low_scale = operating_point(*scored(rng.uniform(0.2, 0.5, 800), rng.uniform(0.01, 0.25, 800), 1000))
    assert 0.15 <= low_scale["track_conf"] <= 0.3
    assert low_scale["low_conf"] <= low_scale["track_conf"]
    # the same detector with every score moved up: the thresholds move with it
    high_scale = operating_point(*scored(rng.uniform(0.6, 0.9, 800), rng.uniform(0.41, 0.65, 800), 1000))
    assert high_scale["track_conf"] > low_scale["track_conf"] + 0.3
    assert 0.6 <= high_scale["recall"] <= 0.82


def test_n_init_is_shorter_for_a_detector_that_misses_more():
    rng = np.random.default_rng(1)
    finds_most = operating_point(*scored(rng.uniform(0.5, 1, 950), rng.uniform(0, 0.3, 50), 1000))
    finds_half = operating_point(*scored(rng.uniform(0.5, 1, 500), rng.uniform(0, 0.3, 50), 1000))
    assert finds_half["recall"] < finds_most["recall"]
    assert N_INIT_MIN <= finds_half["n_init"] < finds_most["n_init"] <= N_INIT_MAX


def test_score_curve_matches_boxes_of_the_same_class_at_iou_half():
    curve = ScoreCurve()
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    pred = np.array([[0, 0, 10, 10], [20, 20, 30, 31], [50, 50, 60, 60]], float)
    curve.update(pred, [0.9, 0.8, 0.7], [0, 1, 0], gt, [0, 0])  # the second box has the wrong class
    scores, tp = curve.arrays()
    assert scores.tolist() == [0.9, 0.8, 0.7] and tp.tolist() == [True, False, False] and curve.n_gt == 2


def test_resolve_prefers_the_user_then_the_model_then_the_built_in_defaults(caplog):
    meta = {"operating_point": {"track_conf": 0.31, "low_conf": 0.12, "n_init": 3, "measured_on": "val (9 images)"}}
    unset = {"conf": None, "track_conf": None, "low_conf": None, "n_init": None, "max_age": 30}
    with caplog.at_level(logging.INFO, logger="edgecnn.tracker"):
        cfg = resolve(unset, meta, "det.tflite")
    assert (cfg["track_conf"], cfg["low_conf"], cfg["n_init"], cfg["conf"]) == (0.31, 0.12, 3, 0.12)
    assert "det.tflite's operating point" in caplog.text and "val (9 images)" in caplog.text
    cfg = resolve({**unset, "track_conf": 0.6}, meta)
    assert cfg["track_conf"] == 0.6 and cfg["n_init"] == 3
    with caplog.at_level(logging.INFO, logger="edgecnn.tracker"):
        cfg = resolve(unset, {}, "yolov8n.onnx")  # a detector without an operating point
    assert {k: cfg[k] for k in DETECTOR_FALLBACK} == DETECTOR_FALLBACK and cfg["conf"] == cfg["low_conf"]
    assert "yolov8n.onnx carries no operating point" in caplog.text
    cfg = resolve(unset)  # public detections (det.txt): the MOT15 defaults
    assert [cfg[k] for k in ("track_conf", "low_conf", "n_init")] == [TRACKER_KEYS.keys[k].default
                                                                     for k in ("track_conf", "low_conf", "n_init")]


@pytest.mark.parametrize("artifact", ["det_onnx", "det_tflite"])
def test_an_artifact_carries_its_operating_point_into_the_app(artifact, tmp_path):
    from edgecnn.export.metadata import store_operating_point
    from edgecnn.runtime.app import TrackingPipeline, load_config
    from edgecnn.runtime.backends import load_backend

    source = exported_models()[artifact]
    path = tmp_path / source.name
    shutil.copy(source, path)
    point = {"track_conf": 0.27, "low_conf": 0.09, "n_init": 4}
    store_operating_point(path, {"operating_point": point, "images": 5}, "data.yaml", "val")
    meta = load_backend(path).meta
    assert meta["operating_point"]["track_conf"] == 0.27 and meta["names"] == load_backend(source).meta["names"]
    pipeline = TrackingPipeline(load_config({"model": str(path)}))
    tracker = pipeline.tracker
    assert (tracker.track_conf, tracker.low_conf, tracker.n_init, pipeline.detectors[0].conf) == (0.27, 0.09, 4, 0.09)
    tracker = TrackingPipeline(load_config({"model": str(path), "n_init": 2, "conf": 0.2})).tracker
    assert tracker.n_init == 2 and tracker.track_conf == 0.27


def test_val_writes_an_operating_point_only_into_an_exported_artifact(tmp_path):
    from edgecnn.commands import val
    from edgecnn.config import ConfigError

    with pytest.raises(ConfigError, match="save_operating_point"):
        val.run(val.KEYS.resolve({"model": str(tmp_path / "best.pt"), "data": str(tmp_path / "data.yaml"),
                                  "save_operating_point": True}))
