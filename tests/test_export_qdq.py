"""A QAT-style ONNX with QuantizeLinear/DequantizeLinear pairs exports to int8 TFLite.

onnx2tf mis-converts Q/DQ graphs, so the exporter turns each activation pair into a Clip to its
range, keeps the QAT weights and calibrates again; the metadata says so.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from edgecnn.export.onnx import export_onnx
from edgecnn.export.tflite import export_tflite
from edgecnn.runtime.backends import load_backend
from export_tiny import IMGSZ, META, random_images, tiny_detector


class Images(CalibrationDataReader):
    def __init__(self, backend, images):
        self.feed = iter([{"images": np.ascontiguousarray(backend.normalize(im[None]).transpose(0, 3, 1, 2))} for im in images])

    def get_next(self):
        return next(self.feed, None)


@pytest.fixture(scope="module")
def qdq_onnx(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("qdq")
    float_path = export_onnx(tiny_detector(), META, out / "float.onnx", imgsz=IMGSZ)
    raw = out / "raw_qdq.onnx"
    quantize_static(str(float_path), str(raw), Images(load_backend(float_path), random_images(8, seed=3)),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    graph = onnx.load(str(raw))
    if not any(p.key == "task" for p in graph.metadata_props):
        graph.metadata_props.extend(onnx.load(str(float_path)).metadata_props)
    onnx.save(graph, str(out / "qat.onnx"))
    return out / "qat.onnx"


def test_stripped_graph_computes_what_the_qdq_graph_does(qdq_onnx, tmp_path):
    from edgecnn.export.qdq import strip_qdq

    stripped = strip_qdq(onnx.load(str(qdq_onnx)))
    assert "QuantizeLinear" not in {n.op_type for n in stripped.graph.node}
    onnx.save(stripped, str(tmp_path / "float.onnx"))
    images = random_images(3, seed=9)
    ours, ref = load_backend(tmp_path / "float.onnx").predict(images), load_backend(qdq_onnx).predict(images)
    for name in ("boxes", "scores"):  # only the rounding differs
        assert np.abs(ours[name] - ref[name]).max() < 0.03 * np.abs(ref[name]).max()


def test_qdq_onnx_to_int8_tflite_is_recalibrated(qdq_onnx, tmp_path):
    ops = {n.op_type for n in onnx.load(str(qdq_onnx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    path = export_tflite(qdq_onnx, tmp_path / "qat_int8.tflite", random_images(8, seed=3), precision="int8", io="int8")
    backend = load_backend(path)
    assert backend.meta["int8_ranges"].startswith("calibrated within the QAT ranges")
    assert backend.input["dtype"] == np.int8
    images = random_images(4, seed=8)
    ours, ref = backend.predict(images), load_backend(qdq_onnx).predict(images)
    # int8 noise on a fake-quantized model: a few quantization steps of each output's range
    for name in ("boxes", "scores"):
        assert np.abs(ours[name] - ref[name]).max() < 0.1 * np.abs(ref[name]).max()
