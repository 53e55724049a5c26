"""A private sshd on loopback for tests: a throwaway key and host key, a temporary port.

Needs Debian's openssh-server (`apt-get install -y openssh-server`); `private_sshd` skips without it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from edgecnn.deploy.ssh import Remote

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"  # scp speaks SFTP since OpenSSH 9
HAVE_SSHD = Path(SSHD).is_file() and shutil.which("ssh") is not None
NO_SSHD = "needs OpenSSH's sshd and ssh (apt-get install -y openssh-server)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def private_sshd(work: Path):
    """A private sshd on 127.0.0.1 that accepts one throwaway key, its files in `work`; yields its Remote."""
    if not HAVE_SSHD:
        pytest.skip(NO_SSHD)
    for key in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / key)], check=True)
    shutil.copy(work / "id.pub", work / "authorized_keys")
    port, user = free_port(), getpass.getuser()
    (work / "sshd_config").write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {work / 'host_key'}
AuthorizedKeysFile {work / 'authorized_keys'}
PidFile {work / 'sshd.pid'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers {user}
Subsystem sftp {SFTP_SERVER}
""")
    (work / "ssh_config").write_text(f"""
Host *
  UserKnownHostsFile {work / 'known_hosts'}
  StrictHostKeyChecking accept-new
  LogLevel ERROR
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(work / "sshd_config")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if server.poll() is not None:
            pytest.skip(f"sshd did not start: {server.stderr.read()[-1000:]}")
        time.sleep(0.1)
    remote = Remote(f"{user}@127.0.0.1", port, identity=str(work / "id"), ssh_config=str(work / "ssh_config"))
    try:
        yield remote
    finally:
        server.terminate()
        server.wait(timeout=10)
