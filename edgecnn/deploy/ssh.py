"""Commands on a device over SSH (OpenSSH's own ssh, scp and rsync; no Python SSH library).

`Remote.run(script)` runs a bash script on the device and returns its output; `Remote.copy`
sends a file with rsync when both ends have it, scp otherwise. With `dry_run` every command
is printed instead of run. Failures become `RemoteError`s that say what went wrong in words:
connection refused, unknown host, authentication, no space left, a missing program.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOG = logging.getLogger(__name__)
SSH_FAILED = 255  # ssh's own exit status when it cannot connect or authenticate

# (text in ssh's or the script's stderr, what to tell the user); first match wins.
DIAGNOSES = (
    ("Connection refused", "ssh connection to {target} refused: is sshd running there, on port {port}?"),
    ("Could not resolve hostname", "unknown host {target}: check the name (or use its IP address)"),
    ("Connection timed out", "ssh connection to {target} timed out: is the device on and reachable?"),
    ("No route to host", "no route to {target}: is the device on this network?"),
    ("Permission denied", "ssh to {target} was refused authentication: give identity=<private key> or install your key "
                          "with ssh-copy-id"),
    ("Host key verification failed", "the host key of {target} does not match known_hosts: if the device was "
                                     "reinstalled, remove the old key with ssh-keygen -R"),
    ("No space left on device", "no space left on {target}: free some disk space there"),
)


class RemoteError(RuntimeError):
    """A command on the device failed; the message says why."""


@dataclass
class Remote:
    host: str  # user@host
    port: int = 22
    identity: str | None = None  # private key file
    ssh_config: str | None = None  # an ssh config file (-F), e.g. with UserKnownHostsFile
    dry_run: bool = False
    connect_timeout: int = 10

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}" if self.port != 22 else self.host

    def check_local(self) -> None:
        """This machine has the OpenSSH programs the install uses."""
        for program in ("ssh", "scp"):
            require_local(program)

    def ssh_options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.ssh_config:
            opts = ["-F", self.ssh_config, *opts]
        if self.identity:
            opts += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        return opts

    def ssh_command(self, remote_command: str) -> list[str]:
        return ["ssh", *self.ssh_options(), "-p", str(self.port), self.host, remote_command]

    def run(self, script: str, what: str) -> str:
        """Run `script` with bash on the device; its stdout, or RemoteError saying `what` failed."""
        command = self.ssh_command("bash -s")
        if self.dry_run:
            print(f"$ {shlex.join(command)} <<'EOF'\n{script.strip()}\nEOF", flush=True)
            return ""
        LOG.info("%s on %s", what, self.target)
        result = subprocess.run(command, input=script, capture_output=True, text=True)
        if result.returncode != 0:
            raise RemoteError(self.diagnose(result.returncode, result.stdout + result.stderr, what))
        return result.stdout

    def copy(self, local: str | Path, remote_path: str) -> None:
        """Copy a file to `remote_path` on the device: rsync (resumable) when both ends have it, else scp."""
        if shutil.which("rsync") and (self.dry_run or self._remote_has("rsync")):
            shell = shlex.join(["ssh", *self.ssh_options(), "-p", str(self.port)])
            command = ["rsync", "-t", "--partial", "-e", shell, str(local), f"{self.host}:{remote_path}"]
        else:
            command = ["scp", *self.ssh_options(), "-P", str(self.port), str(local), f"{self.host}:{remote_path}"]
        if self.dry_run:
            print(f"$ {shlex.join(command)}", flush=True)
            return
        LOG.info("copying %s to %s:%s", Path(local).name, self.target, remote_path)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RemoteError(self.diagnose(result.returncode, result.stdout + result.stderr, f"copying {local}"))

    def _remote_has(self, program: str) -> bool:
        result = subprocess.run(self.ssh_command(f"command -v {shlex.quote(program)}"), capture_output=True, text=True)
        if result.returncode == SSH_FAILED:
            raise RemoteError(self.diagnose(result.returncode, result.stderr, "connecting"))
        return result.returncode == 0

    def diagnose(self, code: int, output: str, what: str) -> str:
        for needle, message in DIAGNOSES:
            if needle in output:
                return message.format(target=self.target, port=self.port)
        tail = "\n".join(output.strip().splitlines()[-8:])
        if code == SSH_FAILED:
            return f"ssh to {self.target} failed while {what}:\n{tail}"
        return f"{what} failed on {self.target} (exit {code}):\n{tail}"


def require_local(program: str) -> None:
    if shutil.which(program) is None:
        hint = "sudo apt install openssh-client" if sys.platform.startswith("linux") else "install OpenSSH"
        raise RemoteError(f"`{program}` not found on this machine: {hint}")
