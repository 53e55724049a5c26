"""TFLite fp32/fp16 through onnx2tf: NHWC input, output layouts kept, metadata inside, same results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecnn.export.onnx import export_onnx
from edgecnn.export.parity import check_parity
from edgecnn.export.tflite import export_tflite
from edgecnn.export.torch_backend import TorchBackend
from edgecnn.runtime.backends import TFLiteBackend, load_backend, read_tflite_metadata
from edgecnn.runtime.detector import Detector
from export_tiny import IMGSZ, META, random_images, tiny_detector


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tflite")
    model = tiny_detector()
    onnx_path = export_onnx(model, META, out / "tiny.onnx", imgsz=IMGSZ)
    calib = random_images(4, seed=3)
    onnx_bytes = onnx_path.read_bytes()
    paths = {p: export_tflite(onnx_path, out / f"tiny_{p}.tflite", calib, precision=p) for p in ("fp32", "fp16")}
    assert onnx_path.read_bytes() == onnx_bytes  # onnx2tf rewrites its input: it must get a copy
    return TorchBackend(model, META, imgsz=IMGSZ), onnx_path, paths


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tflite_matches_torch(artifacts, precision):
    torch_backend, _, paths = artifacts
    backend = load_backend(paths[precision], threads=1)
    assert isinstance(backend, TFLiteBackend)
    detail = backend.interpreter.get_input_details()[0]
    assert list(detail["shape"]) == [1, IMGSZ, IMGSZ, 3] and detail["dtype"] == np.float32  # NHWC
    images = random_images(3, seed=4)
    diffs = check_parity(torch_backend, backend, images, precision)
    out = backend.predict(images)
    assert out["boxes"].shape == (3, 189, 4) and out["scores"].shape == (3, 189, 2)
    assert max(diffs.values()) < (1e-4 if precision == "fp32" else 2e-2)


def test_metadata_travels_inside_the_file(artifacts, tmp_path):
    _, _, paths = artifacts
    data = paths["fp16"].read_bytes()
    meta = load_backend(paths["fp16"]).meta
    for key in ("task", "names", "mean", "std", "strides", "run_hash"):
        assert meta[key] == META[key]
    assert meta["input_size"] == [IMGSZ, IMGSZ] and meta["precision"] == "fp16" and meta["io"] == "float"
    assert set(meta["outputs"]) == {"boxes", "scores"}
    assert "edgecnn" in read_tflite_metadata(data)
    # the file is self-contained: a copy elsewhere, under another name, still loads with its metadata
    copy = tmp_path / "anything.tflite"
    copy.write_bytes(data)
    assert load_backend(copy).meta["names"] == META["names"]


def test_detector_finds_the_same_boxes_in_onnx_and_tflite(artifacts):
    _, onnx_path, paths = artifacts
    frame = random_images(1, size=160, seed=5)[0][:120]  # a 160x120 BGR frame: letterboxed
    dets = [Detector(load_backend(p), conf=0.3, iou=0.5).detect(frame) for p in (onnx_path, paths["fp32"])]
    assert len(dets[0]) > 0 and len(dets[0]) == len(dets[1])
    np.testing.assert_allclose(dets[0].xyxy, dets[1].xyxy, atol=1e-3)
    np.testing.assert_array_equal(dets[0].classes, dets[1].classes)
    assert dets[0].xyxy[:, [0, 2]].max() <= 160 and dets[0].xyxy[:, [1, 3]].max() <= 120


def test_wrong_files_named_tflite_are_clear_errors(artifacts, tmp_path):
    _, onnx_path, _ = artifacts
    text = tmp_path / "model.tflite"
    text.write_text("not a model at all")
    with pytest.raises(ValueError, match="model.tflite: not a TFLite model"):
        load_backend(text)
    renamed = tmp_path / "exported.tflite"
    renamed.write_bytes(onnx_path.read_bytes())
    with pytest.raises(ValueError, match="exported.tflite: not a TFLite model .*ONNX model: rename it to .onnx"):
        load_backend(renamed)


def test_static_onnx_required(artifacts, tmp_path):
    torch_backend, _, _ = artifacts
    dynamic = export_onnx(torch_backend.model, META, tmp_path / "dyn.onnx", imgsz=IMGSZ, dynamic=True)
    with pytest.raises(ValueError, match="dyn.onnx: has dynamic axes"):
        export_tflite(dynamic, tmp_path / "x.tflite", random_images(1), precision="fp32")
    with pytest.raises(ValueError, match="io=uint8 needs precision=int8"):
        export_tflite(dynamic, tmp_path / "x.tflite", random_images(1), precision="fp32", io="uint8")


def test_cube_shaped_head_tensors_convert_correctly(tmp_path):
    """At 64 px the stride-16 box conv gives (1, 4, 4, 4): onnx2tf alone mixes NCHW and NHWC up."""
    from edgecnn.export.layout import cube_shapes

    import onnx

    model = tiny_detector()
    meta = dict(META, imgsz=64)
    onnx_path = export_onnx(model, meta, tmp_path / "cube.onnx", imgsz=64)
    assert any(shape == [1, 4, 4, 4] for shape in cube_shapes(onnx.load(str(onnx_path))).values())
    path = export_tflite(onnx_path, tmp_path / "cube.tflite", random_images(2, size=64), precision="fp32")
    diffs = check_parity(TorchBackend(model, meta, imgsz=64), load_backend(path), random_images(2, size=64, seed=1), "fp32")
    assert max(diffs.values()) < 1e-4


def test_layout_check_catches_a_wrong_conversion(artifacts, tmp_path):
    from edgecnn.export.parity import ParityError
    from edgecnn.export.tflite import check_layout

    import onnx

    _, onnx_path, paths = artifacts
    other = export_onnx(tiny_detector(seed=1), META, tmp_path / "other.onnx", imgsz=IMGSZ)
    with pytest.raises(ParityError, match=r"onnx2tf converted other.onnx wrongly: .*output '(boxes|scores)' differs"):
        check_layout(other, paths["fp32"].read_bytes(), META | {"input_size": [IMGSZ, IMGSZ]}, random_images(2),
                     onnx.load(str(other)))


def test_a_batch_of_two_gives_each_image_what_batch_one_does(artifacts, tmp_path):
    """`export_onnx(batch=2)`: an int8 TFLite taking two images per call, calibrated in pairs; three
    images (the last call filled up) come out as the batch-1 model gives them one by one."""
    torch_backend, _, _ = artifacts
    calib = random_images(4, seed=3)
    single, pair = (export_tflite(export_onnx(torch_backend.model, META, tmp_path / f"b{n}.onnx", imgsz=IMGSZ, batch=n),
                                  tmp_path / f"b{n}.tflite", calib, precision="int8") for n in (1, 2))
    backend = load_backend(pair, threads=1)
    assert backend.batch == 2 and list(backend.interpreter.get_input_details()[0]["shape"]) == [2, IMGSZ, IMGSZ, 3]
    images = random_images(3, seed=4)
    out, alone = backend.predict(images), load_backend(single, threads=1).predict(images)
    assert out["scores"].shape == (3, 189, 2)
    for name in ("boxes", "scores"):
        np.testing.assert_array_equal(out[name], alone[name])
