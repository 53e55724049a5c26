"""A fresh venv with only a device's requirements file: what a Raspberry Pi installs, nothing more.

Built once per distinct requirements file with the base interpreter (not the test venv) and pip
through the configured index, and cached under ~/.cache/edgecnn-device-venv-<hash>, so reruns
are instant. Tests that need it skip when the packages cannot be installed (no index reachable).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAMP = ".edgecnn-complete"


def base_python() -> str:
    """The interpreter behind the test venv: a plain Python 3.11 without the host's packages."""
    return getattr(sys, "_base_executable", None) or sys.executable


def device_venv(device: str = "rpi5") -> Path:
    """The cached venv for `devices/requirements-<device>.txt`; its python is `<venv>/bin/python`."""
    requirements = ROOT / "devices" / f"requirements-{device}.txt"
    digest = hashlib.sha256(requirements.read_bytes() + base_python().encode()).hexdigest()[:12]
    venv = Path.home() / ".cache" / f"edgecnn-device-venv-{digest}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse it
        if (venv / STAMP).is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True, capture_output=True)
        pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)],
                             capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"cannot install {requirements.name} into a fresh venv (no package index?):\n{pip.stderr[-1500:]}")
        (venv / STAMP).write_text(requirements.read_text())
    return venv
