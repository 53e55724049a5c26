"""Install a bundle on a device over SSH: check it, copy it, unpack it, make its venv, start it.

On the device, under `root` (default `~/edgecnn`):
  <name>/            the unpacked bundle; `.venv` links to the venv for its requirements
  venv-<hash>/       one venv per distinct requirements file, reused by later bundles
  current -> <name>  the active bundle; the systemd unit runs current/run.sh
Each step is one SSH command; `dry_run` prints them all instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from pathlib import Path

from edgecnn.deploy.bundle import read_manifest
from edgecnn.deploy.emulation import ShellTarget
from edgecnn.deploy.profiles import DeviceProfile
from edgecnn.deploy.ssh import Remote, RemoteError

LOG = logging.getLogger(__name__)
VENV_MB = 450  # numpy + OpenCV + scipy + an interpreter, installed


def shell_path(path: str) -> str:
    """A remote path for a bash script: `~/x` expands to the remote home, the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def copy_path(path: str) -> str:
    """A remote path for scp/rsync, where a relative path starts at the remote home."""
    return path[2:] if path.startswith("~/") else path


def deploy(bundle: Path, profile: DeviceProfile, remote: Remote | ShellTarget, root: str = "~/edgecnn",
           python: str | None = None, venv: str | None = None, service: bool = False) -> dict:
    """Install `bundle` on `remote` (a device over SSH, or an `emulation.ShellTarget`: the arm64 root
    or this host); returns where it went. Errors on the device raise RemoteError."""
    remote.check_local()
    manifest = read_manifest(bundle)
    if manifest["device"] != profile.name:
        raise RemoteError(f"{bundle} was built for {manifest['device']}, not {profile.name}")
    name = manifest["name"]
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"{bundle}: bundle name {name!r} has characters other than letters, digits, . _ -")
    python = python or profile.python
    requirements = read_member(bundle, f"{name}/requirements.txt")
    venv = venv or f"{root}/venv-{hashlib.sha256(requirements).hexdigest()[:12]}"
    need_mb = 3 * bundle.stat().st_size / 2**20 + VENV_MB
    R, V = shell_path(root), shell_path(venv)

    out = remote.run(f"""
set -u
PY=$(command -v {shlex.quote(python)} || true)
[ -n "$PY" ] || {{ echo "edgecnn: the device has no {python} ({profile.name} needs it): install it, \
e.g. sudo apt install {python} {python}-venv" >&2; exit 3; }}
"$PY" -c 'import venv, ensurepip' 2>/dev/null || {{ echo "edgecnn: {python} on the device cannot make venvs: \
sudo apt install {python}-venv" >&2; exit 4; }}
mkdir -p {R} || exit 5
echo "free_mb=$(df -Pk {R} | awk 'NR==2 {{print int($4 / 1024)}}')"
""", "checking the device")
    free = next((int(line.split("=")[1]) for line in out.splitlines() if line.startswith("free_mb=")), None)
    if free is not None and free < need_mb:
        raise RemoteError(f"no space on {remote.target}: {free} MB free in {root}, the bundle and its venv need "
                          f"about {need_mb:.0f} MB")

    remote.copy(bundle, copy_path(f"{root}/{name}.tar.gz"))
    site = "--system-site-packages " if profile.system_site_packages else ""
    remote.run(f"""
set -euo pipefail
cd {R}
rm -rf {name}.partial && mkdir {name}.partial
tar -xzf {name}.tar.gz -C {name}.partial --strip-components=1
if [ ! -x {V}/bin/python ]; then $(command -v {shlex.quote(python)}) -m venv {site}{V}; fi
{V}/bin/python -m pip install --disable-pip-version-check -q -r {name}.partial/requirements.txt
ln -sfn "$(cd {V} && pwd)" {name}.partial/.venv
(cd {name}.partial && PYTHONPATH=. .venv/bin/python -c 'import json
from edgecnn.runtime.backends import load_backend
config = json.load(open("config.json"))
for key in ("model", "reid"):
    if config.get(key):
        print("loaded", load_backend(config[key]))')
rm -rf {name} && mv {name}.partial {name}
ln -sfn {name} current.partial && mv -Tf current.partial current
rm -f {name}.tar.gz
""", "installing the bundle")
    if service:
        remote.run(f"""
set -euo pipefail
cd {R}
sudo -n true 2>/dev/null || {{ echo "edgecnn: service=true needs passwordless sudo on the device" >&2; exit 6; }}
ROOT="$(pwd)"
sed -e "s#@USER@#$(id -un)#g" -e "s#@ROOT@#$ROOT#g" current/edgecnn.service > edgecnn.service.partial
sudo -n install -m 644 edgecnn.service.partial /etc/systemd/system/edgecnn.service
rm -f edgecnn.service.partial
sudo -n systemctl daemon-reload
sudo -n systemctl enable edgecnn.service
sudo -n systemctl restart edgecnn.service
systemctl is-active edgecnn.service
""", "installing the systemd service")
    return {"device": profile.name, "host": remote.target, "bundle": name, "path": f"{root}/{name}",
            "venv": venv, "service": service}


def read_member(bundle: Path, member: str) -> bytes:
    import tarfile

    with tarfile.open(bundle, "r:gz") as tar:
        try:
            return tar.extractfile(member).read()
        except KeyError:
            raise ValueError(f"{bundle}: no {member} in the bundle") from None
