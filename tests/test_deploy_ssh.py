"""`edgecnn deploy` against a REAL sshd on loopback: a throwaway key and host key, a temporary
port and install root; deploy a bundle, then run the deployed launcher on a video through SSH.

Needs Debian's openssh-server (`apt-get install -y openssh-server`); skips cleanly without it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from edgecnn.deploy.bundle import build_bundle
from edgecnn.deploy.install import deploy
from edgecnn.deploy.profiles import load_profile
from edgecnn.deploy.ssh import Remote, RemoteError
from edgecnn.runtime.mot import read_mot
from device_venv import base_python, device_venv
from runtime_models import exported_models, synthetic_video
from sshd import HAVE_SSHD, NO_SSHD, free_port, private_sshd

pytestmark = pytest.mark.skipif(not HAVE_SSHD, reason=NO_SSHD)
LOW = ["conf=0.005", "track_conf=0.008", "low_conf=0.005", "max_det=20"]  # untrained weights score ~0.01


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A private sshd on 127.0.0.1 that accepts one throwaway key; yields (Remote, work dir)."""
    work = tmp_path_factory.mktemp("ssh")
    with private_sshd(work) as remote:
        yield remote, work


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    models = exported_models()
    out = tmp_path_factory.mktemp("dist")
    return build_bundle(load_profile("rpi5"), [models["det_tflite"]], [models["reid_tflite"]], out)


def ssh(remote: Remote, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(remote.ssh_command(command), capture_output=True, text=True, timeout=180)


def test_deploy_then_run_the_launcher_over_ssh(sshd, bundle, tmp_path):
    remote, work = sshd
    root = str(work / "device")
    venv = device_venv("rpi5")  # what the device's pip would install; reused so the test stays fast
    result = deploy(bundle, load_profile("rpi5"), remote, root=root, python=base_python(), venv=str(venv))
    name = bundle.name.removesuffix(".tar.gz")
    assert result["bundle"] == name and result["path"] == f"{root}/{name}"
    installed = Path(root) / "current"
    assert installed.resolve() == (Path(root) / name).resolve()
    assert (installed / ".venv").resolve() == venv.resolve()
    assert not (Path(root) / f"{name}.tar.gz").exists() and not (Path(root) / f"{name}.partial").exists()

    video = synthetic_video(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "results.txt"
    command = shlex.join([f"{root}/current/run.sh", f"source={video}", f"mot={out}", "max_frames=20", *LOW, "--json"])
    run = ssh(remote, command)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["frames"] == 20 and report["tracks"] > 0
    assert len(read_mot(out)) > 0

    # a second deploy of the same bundle replaces it in place and reuses the venv
    again = deploy(bundle, load_profile("rpi5"), remote, root=root, python=base_python(), venv=str(venv))
    assert again["path"] == result["path"]


def test_deployed_launcher_refuses_a_tampered_install(sshd, bundle, tmp_path):
    remote, work = sshd
    root = work / "device2"
    deploy(bundle, load_profile("rpi5"), remote, root=str(root), python=base_python(), venv=str(device_venv("rpi5")))
    config = root / "current" / "config.json"
    config.write_text(config.read_text().replace('"threads": 4', '"threads": 1'))
    run = ssh(remote, f"{root}/current/run.sh max_frames=1")
    assert run.returncode == 1 and "refusing to start" in run.stderr and "config.json: FAILED" in run.stdout


def test_dry_run_prints_every_command_and_touches_nothing(sshd, bundle, capsys):
    remote, work = sshd
    dry = Remote(remote.host, remote.port, remote.identity, remote.ssh_config, dry_run=True)
    deploy(bundle, load_profile("rpi5"), dry, root=str(work / "dry"), service=True)
    printed = capsys.readouterr().out
    assert not (work / "dry").exists()
    assert printed.count("$ ssh ") >= 3 and ("$ scp " in printed or "$ rsync " in printed)
    for step in ("command -v python3.11", "-m venv --system-site-packages", "pip install", "tar -xzf",
                 "systemctl enable edgecnn.service", "/etc/systemd/system/edgecnn.service"):
        assert step in printed, step


def test_remote_errors_say_what_went_wrong(sshd, bundle):
    remote, work = sshd
    with pytest.raises(RemoteError, match="has no python3.99"):
        deploy(bundle, load_profile("rpi5"), remote, root=str(work / "x"), python="python3.99")
    refused = Remote(remote.host, free_port(), remote.identity, remote.ssh_config)
    with pytest.raises(RemoteError, match="refused: is sshd running there, on port"):
        deploy(bundle, load_profile("rpi5"), refused, root=str(work / "y"))
    with pytest.raises(RemoteError, match="built for rpi5, not jetson-orin-nano"):
        deploy(bundle, load_profile("jetson-orin-nano"), remote, root=str(work / "z"))
    full = remote.diagnose(1, "tar: models/det.tflite: Cannot write: No space left on device", "installing")
    assert full.startswith("no space left on")
    stranger = Remote("nobody-here@127.0.0.1", remote.port, str(work / "id"), remote.ssh_config)
    with pytest.raises(RemoteError, match="refused authentication"):
        stranger.run("true", "checking")
