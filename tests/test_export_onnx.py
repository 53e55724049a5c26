"""ONNX export: a checked graph, metadata that round-trips, outputs equal to PyTorch, clear errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from edgecnn.export.onnx import export_onnx
from edgecnn.export.parity import ParityError, check_parity
from edgecnn.export.torch_backend import TorchBackend
from edgecnn.runtime.backends import OnnxBackend, load_backend
from export_tiny import IMGSZ, META, NAMES, random_images, tiny_detector


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    model = tiny_detector()
    path = export_onnx(model, META, tmp_path_factory.mktemp("onnx") / "tiny.onnx", imgsz=IMGSZ)
    return model, path


def test_graph_is_checked_and_names_its_outputs(exported):
    _, path = exported
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    assert [o.name for o in graph.graph.output] == ["boxes", "scores"]
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 3, IMGSZ, IMGSZ]
    assert [d.dim_value for d in graph.graph.output[1].type.tensor_type.shape.dim] == [1, 144 + 36 + 9, len(NAMES)]


def test_metadata_round_trip(exported):
    _, path = exported
    props = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    backend = load_backend(path)
    for key in ("task", "names", "mean", "std", "strides", "run_hash"):
        assert props[key] == META[key] == backend.meta[key]
    assert backend.input_size == (IMGSZ, IMGSZ)
    assert props["edgecnn_version"] and props["opset"] == 17 and props["dynamic"] is False


def test_onnxruntime_matches_torch_on_images(exported):
    model, path = exported
    images = random_images(5)
    diffs = check_parity(TorchBackend(model, META, imgsz=IMGSZ), load_backend(path, threads=1), images, "onnx")
    assert set(diffs) == {"boxes", "scores"} and max(diffs.values()) < 1e-4


def test_parity_check_catches_a_different_model(exported, tmp_path):
    _, path = exported
    other = tiny_detector(seed=1)
    with pytest.raises(ParityError, match="tiny.onnx: output"):
        check_parity(TorchBackend(other, META, imgsz=IMGSZ), load_backend(path), random_images(2), "onnx")


def test_dynamic_export_takes_any_batch(exported, tmp_path):
    model, _ = exported
    path = export_onnx(model, META, tmp_path / "dyn.onnx", imgsz=IMGSZ, dynamic=True)
    backend = load_backend(path)
    assert backend.batch is None
    images = random_images(3, seed=2)
    out = backend.predict(images)
    assert out["boxes"].shape == (3, 189, 4) and out["scores"].dtype == np.float32
    ref = TorchBackend(model, META, imgsz=IMGSZ).predict(images)
    assert np.abs(out["scores"] - ref["scores"]).max() < 1e-5


def test_classifier_exports_logits(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    meta = {"task": "classify", "names": ["a", "b", "c"], "mean": [0.5] * 3, "std": [0.25] * 3}
    backend = load_backend(export_onnx(model, meta, tmp_path / "cls.onnx", imgsz=[32, 48]))
    assert backend.input_size == (32, 48)
    images = random_images(2, size=48)[:, :32]
    logits = backend.predict(images)["logits"]
    assert logits.shape == (2, 3)
    np.testing.assert_allclose(logits, TorchBackend(model, meta, imgsz=[32, 48]).predict(images)["logits"], atol=1e-5)


def test_wrong_inputs_and_files_are_clear_errors(exported, tmp_path):
    _, path = exported
    backend = load_backend(path)
    with pytest.raises(ValueError, match=r"takes uint8 RGB images of shape \(N, 96, 96, 3\)"):
        backend.predict(np.zeros((1, 64, 64, 3), np.uint8))
    checkpoint = tmp_path / "best.pt"
    torch.save({"format": "edgecnn-checkpoint/1"}, checkpoint)
    with pytest.raises(ValueError, match="best.pt: a PyTorch checkpoint cannot run on the device"):
        load_backend(checkpoint)
    renamed = tmp_path / "model.onnx"
    renamed.write_bytes(checkpoint.read_bytes())
    with pytest.raises(ValueError, match="model.onnx: not an ONNX model; it looks like a PyTorch checkpoint"):
        load_backend(renamed)
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.onnx: not a readable ONNX model"):
        load_backend(text)
    bare = tmp_path / "bare.onnx"
    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    onnx.save(graph, str(bare))
    with pytest.raises(ValueError, match="bare.onnx: no edgecnn metadata"):
        load_backend(bare)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_backend(tmp_path / "missing.onnx")
    assert isinstance(backend, OnnxBackend)


def test_widening_cube_convs_keeps_the_function(tmp_path):
    """Conv → ReLU → Conv → flatten on an 8x8x8 map, with the (zero) biases shared by onnxslim."""
    import onnxruntime as ort

    from edgecnn.export.layout import cube_shapes, pad_cube_convs

    class Cube(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
            for conv in (self.a, self.b):
                torch.nn.init.zeros_(conv.bias)

        def forward(self, x):
            return self.b(self.a(x).relu()).flatten(2), self.b(self.a(x).relu()).permute(0, 2, 3, 1).reshape(1, -1, 8)

    torch.manual_seed(0)
    path = tmp_path / "cube.onnx"
    export_onnx(Cube(), {"task": "detect", "names": ["a"], "mean": [0] * 3, "std": [1] * 3, "strides": [8]}, path, imgsz=8)
    model = onnx.load(str(path))
    assert cube_shapes(model)
    widened, count = pad_cube_convs(model)
    assert count >= 2 and not cube_shapes(widened)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"images": x})
    after = ort.InferenceSession(widened.SerializeToString()).run(None, {"images": x})
    for b, a in zip(before, after):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)
