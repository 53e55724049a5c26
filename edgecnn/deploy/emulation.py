"""An arm64 Debian root run under qemu-user: a Raspberry Pi's CPU architecture and OS base on this machine.

Raspberry Pi OS Bookworm is Debian bookworm for arm64 (Python 3.11): `build_root` makes that
root with Debian's debootstrap (minbase + python3, python3-venv, ca-certificates) and caches it;
the kernel runs its programs through qemu-user-static, registered with binfmt_misc with the `F`
flag (the emulator is opened at registration, so it works inside the root). `missing` says what
this machine lacks for that, in words a user can act on.

`ShellTarget` is a machine reached by running bash on this one: the root (through `unshare` +
`chroot`, with /proc, /sys and /dev mounted in a private mount namespace that vanishes with the
process) or this host itself. It answers `run`, `copy` and `check_local` like `ssh.Remote`, so
`install.deploy` installs a bundle into it exactly as it does on a device.
"""

from __future__ import annotations

import configparser
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.deploy.ssh import RemoteError

LOG = logging.getLogger(__name__)
SUITE, ARCH = "bookworm", "arm64"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"
DEFAULT_ROOT = Path.home() / ".cache" / "edgecnn" / "roots" / f"{SUITE}-{ARCH}"
STAMP = ".edgecnn-root"  # written last: a root without it is incomplete and is rebuilt
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")  # qemu-user-static's register line
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What pip inside the root takes from this machine: its index, proxy and certificates.
PASSED_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_CERT",
              "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def root_ready(root: Path) -> bool:
    try:
        return (root / STAMP).is_file()
    except PermissionError:  # another user's root: not one this user can run
        return False


def enable_binfmt() -> None:
    """Mount binfmt_misc and register qemu-aarch64 where we may (root) and it is not yet done."""
    if os.geteuid() != 0 or platform.machine() not in ("x86_64", "AMD64"):
        return
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True)
    entry = BINFMT_DIR / "qemu-aarch64"
    if (BINFMT_DIR / "register").exists() and not entry.exists():
        if shutil.which("update-binfmts"):
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
        if not entry.exists() and BINFMT_CONF.is_file():
            try:
                (BINFMT_DIR / "register").write_text(BINFMT_CONF.read_text().strip())
            except OSError as err:
                LOG.warning("cannot register qemu-aarch64 with binfmt_misc: %s", err)


def binfmt_problem() -> str | None:
    """Why arm64 programs cannot run here through binfmt_misc, or None when they can."""
    entry = BINFMT_DIR / "qemu-aarch64"
    if not (BINFMT_DIR / "register").exists():
        return (f"binfmt_misc is not mounted at {BINFMT_DIR} (as root: mount -t binfmt_misc binfmt_misc "
                f"{BINFMT_DIR}; in a container the host must allow it)")
    if not entry.exists():
        return "qemu-aarch64 is not registered with binfmt_misc (apt install qemu-user-static binfmt-support)"
    text = entry.read_text()
    if not text.startswith("enabled"):
        return "qemu-aarch64 is registered but disabled (update-binfmts --enable qemu-aarch64)"
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        return ("qemu-aarch64 is registered without the F flag, so it cannot run inside a chroot "
                "(use Debian's qemu-user-static, whose registration has it)")
    return None


def missing(root: Path) -> list[str]:
    """What this machine lacks to run programs in an arm64 root at `root`; empty when nothing."""
    if platform.system() != "Linux":
        return [f"Linux (this is {platform.system()}): the arm64 root needs chroot and binfmt_misc"]
    needs = []
    if os.geteuid() != 0:
        needs.append("root privileges (chroot, mounts and debootstrap need them): run as root or with sudo")
    if platform.machine() not in ("x86_64", "AMD64", "aarch64", "arm64"):
        needs.append(f"an x86_64 or arm64 machine (this is {platform.machine()})")
    for program, package in (("unshare", "util-linux"), ("chroot", "coreutils")):
        if shutil.which(program) is None:
            needs.append(f"`{program}` (apt install {package})")
    if not root_ready(root) and shutil.which("debootstrap") is None:
        needs.append(f"`debootstrap` to build the root at {root} (apt install debootstrap)")
    if platform.machine() in ("x86_64", "AMD64"):
        enable_binfmt()
        problem = binfmt_problem()
        if problem:
            needs.append(problem)
    return needs


def build_root(root: Path, mirror: str = MIRROR, log: Path | None = None) -> float:
    """Make the arm64 bookworm root at `root` (a `.partial` sibling renamed when complete); its seconds."""
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    log = log or root.with_name(root.name + ".debootstrap.log")
    command = ["debootstrap", f"--arch={ARCH}", "--variant=minbase", f"--include={','.join(PACKAGES)}",
               SUITE, str(partial), mirror]
    LOG.info("building the %s %s root at %s (minutes; log: %s)", SUITE, ARCH, root, log)
    tic = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-8:])
        raise RuntimeError(f"debootstrap of {SUITE} {ARCH} from {mirror} failed (exit {done.returncode}; "
                           f"log {log}):\n{tail}")
    (partial / STAMP).write_text(" ".join(command) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return time.perf_counter() - tic


@dataclass
class ShellTarget:
    """A machine that bash on this one reaches; `ssh.Remote`'s interface for `install.deploy`."""

    target: str  # its name in messages
    command: list[str]  # what runs `bash -s` there, without those two words
    filesystem: Path  # its / on this machine
    home: str  # its home directory, where `~/…` paths start
    env: dict = field(default_factory=dict)
    dry_run: bool = False

    def check_local(self) -> None:
        """Nothing to check: bash runs here."""

    def run(self, script: str, what: str) -> str:
        LOG.info("%s in %s", what, self.target)
        result = subprocess.run([*self.command, "bash", "-s"], input=script, capture_output=True, text=True,
                                env=self.env)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-12:])
            raise RemoteError(f"{what} failed in {self.target} (exit {result.returncode}):\n{tail}")
        return result.stdout

    def copy(self, local: str | Path, remote_path: str) -> None:
        path = remote_path if remote_path.startswith("/") else f"{self.home}/{remote_path}"
        copy_into(self.filesystem, local, path)


def host_target(home: Path) -> ShellTarget:
    """This machine, with `home` as the home directory deploy installs under."""
    home.mkdir(parents=True, exist_ok=True)
    return ShellTarget(f"this host ({platform.machine()})", [], Path("/"), str(home),
                       {**os.environ, "HOME": str(home)})


def root_target(root: Path) -> ShellTarget:
    """The arm64 root: bash in a chroot, with this machine's DNS and pip settings copied in."""
    for name in ("/etc/resolv.conf", "/etc/hosts"):
        if Path(name).is_file():
            copy_into(root, name, name)
    env = {"HOME": "/root", "PATH": PATH, "LANG": "C.UTF-8", **pip_settings(root)}
    mount = ('mount -t proc proc "$0/proc" && mount -t sysfs sys "$0/sys" && mount --rbind /dev "$0/dev" '
             '&& exec chroot "$0" "$@"')
    command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount, str(root)]
    return ShellTarget(f"the {SUITE} {ARCH} root {root} (qemu-user)", command, root, "/root", env)


def pip_settings(root: Path) -> dict[str, str]:
    """pip's configuration on this machine, made true inside `root`: /etc/pip.conf and the certificate
    files it or $PIP_CERT names are copied in; the index and proxy variables are passed through."""
    env = {name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}
    certs = [env.get("PIP_CERT")]
    conf = Path("/etc/pip.conf")
    if conf.is_file():
        copy_into(root, conf, str(conf))
        parser = configparser.ConfigParser()
        parser.read(conf)
        certs.append(parser.get("global", "cert", fallback=None))
    for cert in filter(None, certs):
        if Path(cert).is_file():
            copy_into(root, cert, cert)
    return env


def copy_into(filesystem: Path, local: str | Path, path: str) -> None:
    """Copy `local` to `path` of the tree at `filesystem`; a link there is replaced, never followed
    (inside a root, an absolute link would point back at this machine's files)."""
    destination = filesystem / path.lstrip("/")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.is_symlink():
        destination.unlink()
    shutil.copyfile(local, destination)
