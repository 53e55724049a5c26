"""Device bundles: contents (no torch/TF), checksums, reproducible bytes, size, a launcher that
refuses a tampered bundle, and device profiles' validation."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgecnn.config import ConfigError
from edgecnn.deploy.bundle import build_bundle, check_imports, read_manifest, selection_path
from edgecnn.deploy.profiles import DEVICES_DIR, available, load_profile
from runtime_models import exported_models

EXPECTED_DEVICES = {"rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "x86-cpu"}


@pytest.fixture(scope="module")
def models():
    return exported_models()


@pytest.fixture(scope="module")
def rpi5_bundle(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return build_bundle(load_profile("rpi5"), [models["det_tflite"]], [models["reid_tflite"]], out)


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_every_device_profile_loads():
    assert set(available()) == EXPECTED_DEVICES
    for name in EXPECTED_DEVICES:
        profile = load_profile(name)
        assert profile.requirements.is_file() and profile.python.startswith("python3")
    assert load_profile("rpi5").formats == ("tflite",) and load_profile("rpi5").precision == "int8"
    jetson = load_profile("jetson-orin-nano")
    assert jetson.formats == ("onnx",) and jetson.providers[0][0] == "TensorrtExecutionProvider"
    assert jetson.providers[0][1]["trt_fp16_enable"] is True and jetson.providers[-1] == "CPUExecutionProvider"
    assert load_profile("x86-cpu").formats == ("onnx", "tflite")


def test_unknown_device_and_bad_profiles_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown device 'rpi6'.*did you mean 'rpi5'"):
        load_profile("rpi6")
    shutil.copy(DEVICES_DIR / "requirements-rpi5.txt", tmp_path)
    good = (DEVICES_DIR / "rpi5.yaml").read_text()
    (tmp_path / "nothreads.yaml").write_text(good.replace("threads: 4\n", ""))
    with pytest.raises(ConfigError, match=r"nothreads.yaml: missing key\(s\) threads"):
        load_profile("nothreads", tmp_path)
    (tmp_path / "badfmt.yaml").write_text(good.replace("formats: [tflite]", "formats: [engine]"))
    with pytest.raises(ConfigError, match="artifact.formats"):
        load_profile("badfmt", tmp_path)
    (tmp_path / "noreq.yaml").write_text(good.replace("requirements-rpi5.txt", "requirements-none.txt"))
    with pytest.raises(ConfigError, match="requirements file not found"):
        load_profile("noreq", tmp_path)


def test_bundle_holds_only_what_the_device_runs(rpi5_bundle, models):
    files = members(rpi5_bundle)
    root = "det_int8-rpi5/"
    assert all(name.startswith(root) for name in files)
    names = {name[len(root):] for name in files}
    top = {n for n in names if "/" not in n}
    assert top == {"README.md", "config.json", "device.yaml", "edgecnn.service", "manifest.json",
                   "requirements.txt", "run.sh"}
    assert {n for n in names if n.startswith("models/")} == {"models/det_int8.tflite", "models/reid_int8.tflite"}
    code = {n for n in names if n.startswith("edgecnn/")}
    assert {"edgecnn/__init__.py", "edgecnn/config.py", "edgecnn/fileio.py", "edgecnn/runtime/app.py",
            "edgecnn/runtime/sources.py", "edgecnn/runtime/tracker/tracker.py"} <= code
    assert all(n.startswith("edgecnn/runtime/") or n.count("/") == 1 for n in code)
    assert not any(part in n for n in names for part in ("torch", "tensorflow", "__pycache__", ".pyc", "export/"))
    for name, data in files.items():
        if name.endswith(".py"):
            text = data.decode()
            assert "import torch" not in text and "from torch" not in text, name
    config = json.loads(files[root + "config.json"])
    assert config == {"model": "models/det_int8.tflite", "reid": "models/reid_int8.tflite", "source": "picam",
                      "threads": 4}
    requirements = files[root + "requirements.txt"].decode()
    assert "numpy==1." in requirements and "torch" not in requirements and "tensorflow" not in requirements
    # small: the models plus well under half a megabyte of code and text
    models_size = models["det_tflite"].stat().st_size + models["reid_tflite"].stat().st_size
    assert rpi5_bundle.stat().st_size < models_size + 400_000


def test_manifest_checksums_match_every_file(rpi5_bundle):
    files = members(rpi5_bundle)
    manifest = read_manifest(rpi5_bundle)
    listed = {f"det_int8-rpi5/{p}": digest for p, digest in manifest["files"].items()}
    assert set(listed) == set(files) - {"det_int8-rpi5/manifest.json"}
    for name, digest in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    assert manifest["device"] == "rpi5" and manifest["python"] == "python3.11"
    assert manifest["models"]["detector"]["precision"] == "int8"
    assert manifest["models"]["detector"]["input_size"] == [320, 320]


def test_same_inputs_give_the_same_bytes(rpi5_bundle, models, tmp_path):
    again = build_bundle(load_profile("rpi5"), [models["det_tflite"]], [models["reid_tflite"]], tmp_path)
    assert again.read_bytes() == rpi5_bundle.read_bytes()
    raw = rpi5_bundle.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(rpi5_bundle, "r:gz") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos if i.isfile()] == sorted(i.name for i in infos if i.isfile())
    assert {(i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos} == {(0, 0, "", "", 946684800)}
    assert gzip.decompress(raw)  # a valid gzip stream


def test_launcher_runs_and_refuses_a_tampered_bundle(rpi5_bundle, tmp_path):
    with tarfile.open(rpi5_bundle, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    bundle = tmp_path / "det_int8-rpi5"
    env = {**os.environ, "EDGECNN_PYTHON": sys.executable}
    ok = subprocess.run([str(bundle / "run.sh"), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "reconnect_timeout" in ok.stdout

    tracker = bundle / "edgecnn" / "runtime" / "tracker" / "tracker.py"
    tracker.write_text(tracker.read_text() + "\n# changed\n")
    bad = subprocess.run([str(bundle / "run.sh"), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert "does not match its manifest" in bad.stderr and "tracker.py: FAILED" in bad.stdout

    tracker.unlink()
    missing = subprocess.run([str(bundle / "run.sh"), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and "refusing to start" in missing.stderr


def test_wrong_artifacts_for_a_device_are_refused(models, tmp_path):
    with pytest.raises(ConfigError, match="rpi5 runs tflite"):
        build_bundle(load_profile("rpi5"), [models["det_onnx"]], None, tmp_path)
    with pytest.raises(ConfigError, match="jetson-orin-nano runs onnx"):
        build_bundle(load_profile("jetson-orin-nano"), [models["det_tflite"]], None, tmp_path)
    with pytest.raises(ConfigError, match="must be a detect model"):
        build_bundle(load_profile("rpi5"), [models["reid_tflite"]], None, tmp_path)
    devices = tmp_path / "devices"
    devices.mkdir()
    shutil.copy(DEVICES_DIR / "requirements-rpi5.txt", devices)
    (devices / "pi-fp16.yaml").write_text((DEVICES_DIR / "rpi5.yaml").read_text().replace("precision: int8", "precision: fp16"))
    with pytest.raises(ConfigError, match="int8 model; pi-fp16 ships fp16"):
        build_bundle(load_profile("pi-fp16", devices), [models["det_tflite"]], None, tmp_path)


def test_x86_ships_the_fastest_measured_artifact(models, tmp_path):
    bundle = build_bundle(load_profile("x86-cpu"), [models["det_onnx"], models["det_tflite"]], None, tmp_path)
    manifest = read_manifest(bundle)
    timings = json.loads(selection_path(bundle).read_text())["median_latency_ms"]["detector"]
    assert set(timings) == {str(models["det_onnx"]), str(models["det_tflite"])}
    fastest = Path(min(timings, key=timings.get)).name
    assert manifest["models"]["detector"]["file"] == f"models/{fastest}"
    assert bundle.name == f"{Path(fastest).stem}-x86-cpu.tar.gz"


def test_host_only_imports_are_caught(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("import numpy\nimport torch\n")
    with pytest.raises(ValueError, match=r"bad.py:2: imports torch"):
        check_imports({"edgecnn/runtime/bad.py": module})
    module.write_text("from edgecnn.metrics.gate import GateError\n")
    with pytest.raises(ValueError, match="does not ship"):
        check_imports({"edgecnn/runtime/bad.py": module})


def test_bundle_and_deploy_commands(models, tmp_path):
    """`edgecnn bundle …` then `edgecnn deploy … dry_run=true` through the CLI: wiring and output."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    built = subprocess.run([sys.executable, "-m", "edgecnn", "bundle", "device=rpi5", f"detector={models['det_tflite']}",
                            f"out={tmp_path}", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    bundle = Path(result["artifacts"]["bundle"])
    assert bundle.is_file() and result["models"] == {"detector": "models/det_int8.tflite"}
    deployed = subprocess.run([sys.executable, "-m", "edgecnn", "deploy", "device=rpi5", "host=pi@raspberrypi.local",
                               f"bundle={bundle}", "dry_run=true"], capture_output=True, text=True, env=env, timeout=60)
    assert deployed.returncode == 0, deployed.stderr
    assert "pi@raspberrypi.local" in deployed.stdout and "tar -xzf det_int8-rpi5.tar.gz" in deployed.stdout
    missing = subprocess.run([sys.executable, "-m", "edgecnn", "bundle", "device=rpi5"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert missing.returncode == 2 and "detector= is required" in missing.stderr


def test_launcher_passes_serve_and_lines_from_the_environment(rpi5_bundle, tmp_path):
    with tarfile.open(rpi5_bundle, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    run_sh = tmp_path / "det_int8-rpi5" / "run.sh"
    env = {k: v for k, v in os.environ.items() if k != "EDGECNN_TOKEN"}
    env.update(EDGECNN_PYTHON=sys.executable, LINES=str(tmp_path / "no-such-counts.yaml"))
    lines = subprocess.run([str(run_sh)], capture_output=True, text=True, env=env, timeout=120)
    assert lines.returncode == 1 and "no-such-counts.yaml" in lines.stderr
    env.update(LINES="", SERVE="0.0.0.0:0")
    serve = subprocess.run([str(run_sh)], capture_output=True, text=True, env=env, timeout=120)
    assert serve.returncode == 2 and "serve=0.0.0.0: a live view reachable from other machines needs a token" in serve.stderr
