"""The device runtime imports with torch and TensorFlow absent: numpy, OpenCV and an interpreter only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_HEAVY = """
import sys

class _Block:
    BLOCKED = ("torch", "torchvision", "tensorflow", "tf_keras", "keras", "onnx2tf", "nncf")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is blocked: the device runtime must not import it")
        return None

sys.meta_path.insert(0, _Block())
"""

IMPORT_ALL = """
import importlib, pkgutil, json, sys
import numpy as np
import edgecnn.runtime as runtime
names = [m.name for m in pkgutil.walk_packages(runtime.__path__, "edgecnn.runtime.")]
for name in names:
    importlib.import_module(name)
from edgecnn.runtime.postprocess import postprocess, make_anchors
from edgecnn.runtime.backends import tflite_interpreter_class
n = len(make_anchors((64, 64), (8, 16, 32))[0])
dets = postprocess(np.full((1, n, 4), 0.5, np.float32), np.full((1, n, 2), 0.9, np.float32), (64, 64), (8, 16, 32))
interpreter = tflite_interpreter_class().__module__
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorflow", "torchvision"))
print(json.dumps({"modules": names, "detections": len(dets[0]), "interpreter": interpreter, "heavy": heavy}))
"""


def test_runtime_imports_without_torch_or_tensorflow(tmp_path):
    import json

    (tmp_path / "sitecustomize.py").write_text(BLOCK_HEAVY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, timeout=60)
    assert "is blocked" in check.stderr  # the blocker works
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(IMPORT_ALL)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"edgecnn.runtime.backends", "edgecnn.runtime.postprocess", "edgecnn.runtime.detector"} <= set(report["modules"])
    assert report["detections"] > 0 and report["heavy"] == []
    assert report["interpreter"].startswith(("ai_edge_litert", "tflite_runtime"))
