"""Runtime post-processing and backends: anchors, decoding, NMS against torchvision, metadata reading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from edgecnn.runtime.backends import read_tflite_metadata
from edgecnn.runtime.postprocess import decode_boxes, make_anchors, nms, postprocess


def test_anchors_follow_the_output_contract():
    centres, strides = make_anchors((64, 96), (8, 16, 32))
    assert len(centres) == 8 * 12 + 4 * 6 + 2 * 3
    np.testing.assert_array_equal(centres[:2], [[4, 4], [12, 4]])  # row-major: x runs first
    np.testing.assert_array_equal(centres[12], [4, 12])
    np.testing.assert_array_equal(centres[96], [8, 8])  # first cell of stride 16
    assert strides[95] == 8 and strides[96] == 16 and strides[-1] == 32


def test_decode_ltrb_in_stride_units():
    centres, strides = make_anchors((32, 32), (8, 16, 32))
    ltrb = np.zeros((1, len(centres), 4), np.float32)
    ltrb[0, -1] = [0.25, 0.5, 0.25, 0.5]  # the one stride-32 anchor at (16, 16)
    np.testing.assert_allclose(decode_boxes(ltrb, centres, strides)[0, -1], [8, 0, 24, 32])
    with pytest.raises(ValueError, match="metadata .* does not match"):
        decode_boxes(ltrb[:, :-1], centres, strides)


def test_nms_matches_torchvision_batched_nms():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (400, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 400).astype(np.float32)
    classes = rng.integers(0, 3, 400)
    for iou in (0.3, 0.5, 0.7):
        ours = nms(boxes, scores, classes, iou)
        ref = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou)
        assert ours.tolist() == ref.tolist()


def test_postprocess_filters_by_confidence_class_and_max_det():
    centres, strides = make_anchors((64, 64), (8, 16, 32))
    n = len(centres)
    boxes = np.full((2, n, 4), 0.5, np.float32)  # a 1-stride box around every anchor: no overlaps
    scores = np.zeros((2, n, 3), np.float32)
    scores[0, :5, 0] = [0.9, 0.8, 0.7, 0.2, 0.1]
    scores[0, 5:8, 2] = 0.6
    dets = postprocess(boxes, scores, (64, 64), (8, 16, 32), conf=0.25, iou=0.5)
    assert len(dets) == 2 and len(dets[1]) == 0
    assert dets[0].scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.6, 0.6])
    assert dets[0].classes.tolist() == [0, 0, 0, 2, 2, 2]
    assert len(postprocess(boxes, scores, (64, 64), (8, 16, 32), conf=0.25, classes=(2,))[0]) == 3
    assert len(postprocess(boxes, scores, (64, 64), (8, 16, 32), conf=0.25, max_det=2)[0]) == 2
    np.testing.assert_allclose(dets[0].xyxy[0], [0, 0, 8, 8])


def test_overlapping_boxes_of_different_classes_both_survive():
    centres, strides = make_anchors((32, 32), (8, 16, 32))
    boxes = np.full((1, len(centres), 4), 0.5, np.float32)
    scores = np.zeros((1, len(centres), 2), np.float32)
    boxes[0, 1] = [1.5, 0.5, 0.5, 0.5]  # anchor 1 (centre 12, 4) reaches over anchor 0: IoU 0.5
    scores[0, 0, 0], scores[0, 1, 1] = 0.9, 0.8
    assert len(postprocess(boxes, scores, (32, 32), (8, 16, 32), conf=0.5, iou=0.1)[0]) == 2
    scores[0, 1] = [0.8, 0.0]
    assert len(postprocess(boxes, scores, (32, 32), (8, 16, 32), conf=0.5, iou=0.1)[0]) == 1


def test_tflite_metadata_reader_agrees_with_the_schema():
    """Our stdlib flatbuffer reader against LiteRT's generated schema on a real model."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from edgecnn.export.tflite import with_tflite_metadata

    model = schema.ModelT()
    model.version, model.buffers, model.subgraphs, model.operatorCodes = 3, [schema.BufferT()], [], []
    model.description = b"empty"
    data = with_tflite_metadata(bytes(flatbuffer_utils.convert_object_to_bytearray(model)),
                                {"edgecnn": b'{"task": "detect"}', "other": b"\x00\x01"})
    assert read_tflite_metadata(data) == {"edgecnn": b'{"task": "detect"}', "other": b"\x00\x01"}
    again = with_tflite_metadata(data, {"edgecnn": b"{}"})  # replaces, never duplicates
    assert read_tflite_metadata(again) == {"other": b"\x00\x01", "edgecnn": b"{}"}
    with pytest.raises(ValueError, match="corrupt TFLite flatbuffer"):
        read_tflite_metadata(data[:40])


def test_input_hw_reads_every_imgsz_form():
    from edgecnn.runtime.preprocess import input_hw

    assert input_hw(320) == input_hw([320]) == input_hw(np.int64(320)) == (320, 320)
    assert input_hw([128, 64]) == input_hw((128, 64)) == (128, 64)
    for bad in ([1, 2, 3], "big", 0, [64, -1], None):
        with pytest.raises(ValueError, match="imgsz must be"):
            input_hw(bad)
