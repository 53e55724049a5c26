"""`edgecnn <command> --json` prints exactly one JSON object on stdout, for every command.

Each command runs in its own process on tiny inputs, so what third-party libraries print (NNCF's
progress bars and `INFO:nncf:` lines, onnx2tf, TensorFlow, tqdm) would reach the real stdout if
the command line let it; the whole of stdout must parse as one object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgecnn.commands import COMMANDS
from edgecnn.runtime.mot import write_mot

# Commands whose --json output another test checks the same way, on the inputs they need.
CHECKED_ELSEWHERE = {
    "pipeline": "tests/test_cli.py::test_json_prints_exactly_one_object_on_stdout",
    "bundle": "tests/test_bundle.py (a bundle built with --json)",
    "deploy": "tests/test_deploy_ssh.py (needs the SSH server that test starts)",
    "check-device": "tests/test_check_device.py (its 'cannot emulate' answer, as user nobody)",
    "segment": "tests/test_segment.py::test_bundle_ships_the_segmenter_and_runs_its_app (the app with --json from a bundle)",
}
# command: (arguments on top of the inputs below, a key its result must hold)
CASES = {
    "data": (["synth", "kind=detect", "n=2", "imgsz=64", "out={tmp}/synth"], "images"),
    "train": (["model=lenet5", "data={cls}", "epochs=1", "batch=16", "workers=0", "plots=false", "out={tmp}/train"],
              "top1"),
    "val": (["{ckpt}", "data={cls}", "batch=16"], "top1"),
    "qat": (["{ckpt}", "data={cls}", "epochs=0", "subset_size=4", "max_map_drop=100", "workers=0", "out={tmp}/qat"],
            "top1_ptq"),
    "prune": (["{ckpt}", "data={cls}", "steps=1", "ft_epochs=0", "round_to=1", "max_map_drop=100", "latency=false",
               "workers=0", "out={tmp}/prune"], "artifacts"),
    "export": (["{ckpt}", "format=onnx", "calib={cls}/val", "runs=2", "parity_images=2", "out={tmp}/export"],
               "parity_max_abs_diff"),
    "bench": (["{ckpt}", "threads=1", "runs=2", "warmup=0"], "latency_ms_p50"),
    "summary": (["model=lenet5", "imgsz=32"], "macs"),
    "mot-eval": (["gt={tmp}/gt.txt", "res={tmp}/gt.txt"], "IDF1"),
    "track": (["detections={tmp}/det.txt", "out={tmp}/track.txt"], "frames"),
}
SLOW = {"train", "val", "prune", "qat", "export", "bench", "summary"}  # each loads torch in a fresh process


def test_every_command_is_covered():
    assert set(CASES) | set(CHECKED_ELSEWHERE) == set(COMMANDS)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A classification dataset, an untrained LeNet-5 checkpoint and a MOT file with two walkers."""
    from edgecnn.data.synth import synth_classify
    from edgecnn.models import build_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("json")
    synth_classify(tmp / "cls", n=20, val=10, imgsz=32, seed=0)
    meta = {"names": [str(d) for d in range(10)], "imgsz": 32, "mean": [0.0] * 3, "std": [1.0] * 3}
    ckpt = save_checkpoint(tmp / "lenet.pt", build_model("lenet5", num_classes=10, in_channels=3), meta)
    rows = [[f, i, 20 + 60 * i + 3 * f, 40, 30, 60, 1, -1, -1, -1] for f in range(1, 21) for i in (1, 2)]
    write_mot(tmp / "gt.txt", np.array(rows, float))
    write_mot(tmp / "det.txt", np.array([[f, -1, x, y, w, h, 0.9, -1, -1, -1] for f, _, x, y, w, h, *_ in rows]))
    return {"tmp": str(tmp), "cls": str(tmp / "cls"), "ckpt": str(ckpt)}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_json_is_the_only_thing_on_stdout(name, inputs):
    args, key = CASES[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "edgecnn", name, *(a.format(**inputs) for a in args), "--json"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=inputs["tmp"])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)  # the whole of stdout: one object, nothing before or after it
    assert isinstance(result, dict) and key in result, out.stdout[:500]
