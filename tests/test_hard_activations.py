"""HardSwish / HardSigmoid written as Add, Clip, Mul for int8 TFLite (export/hard_activations.py):
the same function, and an int8 model XNNPACK runs in one piece."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch import nn

from edgecnn.export.hard_activations import decompose_hard_activations
from edgecnn.export.onnx import export_onnx
from edgecnn.export.tflite import export_tflite
from edgecnn.runtime.backends import load_backend, tflite_interpreter_class

META = {"task": "classify", "names": ["a", "b", "c", "d"], "imgsz": 48, "mean": [0.5] * 3, "std": [0.25] * 3}


class SqueezeExcite(nn.Module):
    """MobileNetV3's block in small: HardSwish after the convs, a HardSigmoid gate."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.Hardswish())
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, groups=width), nn.Hardswish())
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width, 1), nn.Hardsigmoid())
        self.head = nn.Linear(width, len(META["names"]))

    def forward(self, x):
        x = self.body(self.stem(x))
        return self.head((x * self.gate(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("hard")
    model = SqueezeExcite().eval()
    return model, export_onnx(model, META, out / "se.onnx", imgsz=48), out


def test_decomposed_graph_computes_the_same_function(exported):
    import onnx
    import onnxruntime as ort

    _, onnx_path, out = exported
    graph = onnx.load(str(onnx_path))
    assert {"HardSwish", "HardSigmoid"} <= {n.op_type for n in graph.graph.node}
    decomposed, replaced = decompose_hard_activations(graph)
    assert replaced == {"HardSwish": 2, "HardSigmoid": 1}
    assert not {"HardSwish", "HardSigmoid"} & {n.op_type for n in decomposed.graph.node}
    onnx.checker.check_model(decomposed)
    # inputs far outside [-3, 3] reach both flat parts of each function
    x = np.random.default_rng(0).normal(0, 4, (1, 3, 48, 48)).astype(np.float32)
    outputs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
               for m in (graph, decomposed)]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)


def test_int8_tflite_runs_in_one_xnnpack_partition(exported):
    model, onnx_path, out = exported
    calib = np.random.default_rng(1).integers(0, 256, (16, 48, 48, 3), dtype=np.uint8)
    path = export_tflite(onnx_path, out / "se_int8.tflite", calib, precision="int8", io="int8")
    interpreter = tflite_interpreter_class()(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()  # applies the XNNPACK delegate
    ops = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    assert ops["HARD_SWISH"] == ops["RELU_0_TO_1"] == 0
    assert ops["DELEGATE"] == 1, ops  # a HARD_SWISH left in int8 would split the graph around it

    images = np.random.default_rng(2).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    logits = load_backend(path, threads=1).predict(images)["logits"]
    with torch.no_grad():
        normalized = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        expected = model(normalized).numpy()
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max()


def test_keep_leaves_hard_swish_and_the_gate_tries_it(exported):
    from edgecnn.commands.export import _remedies

    _, onnx_path, out = exported
    calib = np.random.default_rng(1).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    path = export_tflite(onnx_path, out / "se_keep.tflite", calib, precision="int8", hard_activations="keep")
    interpreter = tflite_interpreter_class()(model_path=str(path), num_threads=1)
    ops = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    assert ops["HARD_SWISH"] == 2 and load_backend(path).meta["hard_activations"] == "keep"
    cfg = {"model": str(onnx_path), "calib_images": 16, "io": "int8", "float_layers": 0, "hard_activations": "decompose",
           "recover_qat_epochs": 2}
    assert {"hard_activations": "keep", "calib_images": 64} in [keys for _, keys in _remedies(cfg, onnx_path)]
    assert all("hard_activations" not in keys for _, keys in _remedies({**cfg, "hard_activations": "keep"}, onnx_path))
