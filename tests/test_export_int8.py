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
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    pixels = np.array([0, 128, 255])
    normalized = (pixels[:, None] / 255.0 - np.array(META["mean"])) / np.array(META["std"])
    np.testing.assert_array_equal(lut[pixels], np.clip(np.round(normalized / scale + zero), 0, 255))


def op_input_types(path) -> dict[str, set[str]]:
    """TFLite op name -> the dtypes of its activation inputs, from the interpreter's op list."""
    from edgecnn.runtime.backends import tflite_interpreter_class

    interpreter = tflite_interpreter_class()(model_path=str(path))
    tensors = {t["index"]: t["dtype"].__name__ for t in interpreter.get_tensor_details()}
    types: dict[str, set[str]] = {}
    for op in interpreter._get_ops_details():
        types.setdefault(op["op_name"], set()).update(tensors[i] for i in op["inputs"][:1] if i >= 0)
    return types


def test_attention_products_stay_float_in_int8(tmp_path):
    import onnx

    from edgecnn.export.tflite import auto_float_ops

    model = tiny_detector(attention=True)
    onnx_path = export_onnx(model, META, tmp_path / "attention.onnx", imgsz=IMGSZ)
    plain = export_onnx(tiny_detector(), META, tmp_path / "plain.onnx", imgsz=IMGSZ)
    assert auto_float_ops(onnx.load(str(onnx_path))) == ["BATCH_MATMUL"]
    assert auto_float_ops(onnx.load(str(plain))) == []  # convs only: all int8

    calib = random_images(8, seed=3)
    auto = export_tflite(onnx_path, tmp_path / "auto.tflite", calib, precision="int8", io="int8")
    every = export_tflite(onnx_path, tmp_path / "all.tflite", calib, precision="int8", io="int8", float_ops="none")
    assert op_input_types(auto)["BATCH_MATMUL"] == {"float32"} and op_input_types(auto)["CONV_2D"] == {"int8"}
    assert op_input_types(every)["BATCH_MATMUL"] == {"int8"}
    backend = load_backend(auto, threads=1)
    assert backend.meta["float_ops"] == ["BATCH_MATMUL"] and backend.input["dtype"] == np.int8
    images = random_images(4, seed=6)
    ref = TorchBackend(model, META, imgsz=IMGSZ).predict(images)
    assert np.abs(backend.predict(images)["scores"] - ref["scores"]).max() < 0.05


def test_bad_float_ops_are_clear_errors(tmp_path):
    onnx_path = export_onnx(tiny_detector(), META, tmp_path / "tiny.onnx", imgsz=IMGSZ)
    with pytest.raises(ValueError, match="float_ops: 'batch_matmul'"):
        export_tflite(onnx_path, tmp_path / "x.tflite", random_images(2), precision="int8", float_ops="batch_matmul")
    with pytest.raises(ValueError, match="io=uint8 cannot be combined with float_ops=BATCH_MATMUL"):
        export_tflite(onnx_path, tmp_path / "x.tflite", random_images(2), precision="int8", io="uint8",
                      float_ops="BATCH_MATMUL")
