"""onnx2tf never downloads: a whole int8 conversion runs in a process whose sockets cannot connect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_SOCKETS = """
import socket

def _refuse(self, address, *args, **kwargs):
    with open({log!r}, "a") as f:
        f.write(repr(address) + "\\n")
    raise OSError("network access blocked by test_export_offline")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = lambda address, *a, **k: _refuse(None, address)
"""

CONVERT = """
import json, sys, numpy as np, torch
from edgecnn.export.onnx import export_onnx
from edgecnn.export.tflite import export_tflite
from edgecnn.runtime.backends import load_backend
from export_tiny import IMGSZ, META, random_images, tiny_detector
out = sys.argv[1]
onnx_path = export_onnx(tiny_detector(), META, out + "/tiny.onnx", imgsz=IMGSZ)
path = export_tflite(onnx_path, out + "/tiny_int8.tflite", random_images(2), precision="int8", io="uint8")
print(json.dumps({"cwd_files": __import__("os").listdir("."), "precision": load_backend(path).meta["precision"]}))
"""


def test_int8_conversion_with_sockets_blocked(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "connections.log"
    (site / "sitecustomize.py").write_text(BLOCK_SOCKETS.format(log=str(log)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT), str(ROOT / "tests")]), OMP_NUM_THREADS="1")
    work = tmp_path / "cwd"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CONVERT), str(tmp_path)], cwd=work, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not log.exists(), f"something tried to connect: {log.read_text()}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["precision"] == "int8"
    assert report["cwd_files"] == []  # the conversion ran in its own temporary directory


def test_the_blocker_blocks(tmp_path):
    """Guard against a test that passes because the blocker silently does nothing."""
    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "connections.log"
    (site / "sitecustomize.py").write_text(BLOCK_SOCKETS.format(log=str(log)))
    code = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError as e:\n    print(e)"
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(site)),
                            capture_output=True, text=True, timeout=60)
    assert "blocked by test_export_offline" in result.stdout and log.exists()
