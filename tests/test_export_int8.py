"""Full-integer int8 TFLite: calibrated on our images, float/int8/uint8 I/O handled by the backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecnn.export.onnx import export_onnx
from edgecnn.export.parity import check_parity
from edgecnn.export.tflite import export_tflite
from edgecnn.export.torch_backend import TorchBackend
from edgecnn.runtime.backends import load_backend
from export_tiny import IMGSZ, META, random_images, tiny_detector

IO = ("float", "int8", "uint8")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("int8")
    model = tiny_detector()
    onnx_path = export_onnx(model, META, out / "tiny.onnx", imgsz=IMGSZ)
    calib = random_images(8, seed=3)
    paths = {io: export_tflite(onnx_path, out / f"tiny_int8_{io}.tflite", calib, precision="int8", io=io) for io in IO}
    return TorchBackend(model, META, imgsz=IMGSZ), paths


@pytest.mark.parametrize("io", IO)
def test_int8_io_types_and_accuracy(artifacts, io):
    torch_backend, paths = artifacts
    backend = load_backend(paths[io], threads=1)
    expected = {"float": np.float32, "int8": np.int8, "uint8": np.uint8}[io]
    assert backend.input["dtype"] == expected
    assert all(d["dtype"] == expected for d in backend.outputs.values())
    assert backend.meta["precision"] == "int8" and backend.meta["io"] == io
    assert backend.meta["int8_ranges"] == "calibrated" and backend.meta["calibration_images"] == 8
    images = random_images(4, seed=6)
    out = backend.predict(images)
    assert out["boxes"].dtype == np.float32 and out["scores"].shape == (4, 189, 2)
    diffs = check_parity(torch_backend, backend, images, "int8")
    ref = torch_backend.predict(images)
    # int8 error: a few quantization steps of each output's own range
    assert diffs["scores"] < 0.05 and diffs["boxes"] < 0.05 * np.abs(ref["boxes"]).max()
    assert np.corrcoef(out["scores"].ravel(), ref["scores"].ravel())[0, 1] > 0.98


def test_integer_io_variants_agree_with_float_io(artifacts):
    """Same calibration, so the backend's LUT quantization must reproduce the in-model quantize op."""
    _, paths = artifacts
    images = random_images(3, seed=7)
    outs = {io: load_backend(paths[io]).predict(images) for io in IO}
    for io in ("int8", "uint8"):
        scale = load_backend(paths[io]).outputs["scores"]["quantization"][0]
        assert np.abs(outs[io]["scores"] - outs["float"]["scores"]).max() <= 2 * scale + 1e-6


def test_input_quantization_table(artifacts):
    _, paths = artifacts
    backend = load_backend(paths["uint8"])
    scale, zero = backend.input["quantization"]
    lut = backend._input_lut
    assert lut.shape == (3, 256) and lut.dtype == np.uint8
    pixels = np.array([0, 128, 255])
    normalized = (pixels / 255.0 - np.array(META["mean"])[:, None]) / np.array(META["std"])[:, None]
    np.testing.assert_array_equal(lut[:, pixels], np.clip(np.round(normalized / scale + zero), 0, 255))
