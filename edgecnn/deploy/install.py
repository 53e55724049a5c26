"""Install a bundle on a device over SSH: check it, copy it, unpack it, make its venv, start it.

On the device, under `root` (default `~/edgecnn`):
  <name>/            the unpacked bundle; `.venv` links to the venv for its requirements
  venv-<hash>/       one venv per distinct requirements file, reused by later bundles
  current -> <name>  the active bundle; the systemd unit runs current/run.sh
Each step is one SSH command, a shell script in `devices/deploy/` filled in here; `dry_run` prints
them all instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import string
from pathlib import Path

from edgecnn.deploy.bundle import read_manifest
from edgecnn.deploy.emulation import ShellTarget
from edgecnn.deploy.profiles import DEVICES_DIR, DeviceProfile
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


class _ShellTemplate(string.Template):
    """`%{name}` placeholders: `$` belongs to the shell."""

    delimiter = "%"


def script(template: str, values: dict[str, str]) -> str:
    """The shell script `devices/deploy/<template>` with its `%{name}` placeholders filled in."""
    return _ShellTemplate((DEVICES_DIR / "deploy" / template).read_text()).substitute(values)


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
    values = {"root": shell_path(root), "venv": shell_path(venv), "name": name, "python": python,
              "python_arg": shlex.quote(python), "device": profile.name,
              "site": "--system-site-packages " if profile.system_site_packages else ""}
    out = remote.run(script("check.sh", values), "checking the device")
    free = next((int(line.split("=")[1]) for line in out.splitlines() if line.startswith("free_mb=")), None)
    if free is not None and free < need_mb:
        raise RemoteError(f"no space on {remote.target}: {free} MB free in {root}, the bundle and its venv need "
                          f"about {need_mb:.0f} MB")
    remote.copy(bundle, copy_path(f"{root}/{name}.tar.gz"))
    remote.run(script("install.sh", values), "installing the bundle")
    if service:
        remote.run(script("service.sh", values), "installing the systemd service")
    return {"device": profile.name, "host": remote.target, "bundle": name, "path": f"{root}/{name}",
            "venv": venv, "service": service}


def read_member(bundle: Path, member: str) -> bytes:
    import tarfile

    with tarfile.open(bundle, "r:gz") as tar:
        try:
            return tar.extractfile(member).read()
        except KeyError:
            raise ValueError(f"{bundle}: no {member} in the bundle") from None
