"""Waiting for a server process the tests started to accept connections on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Callable


def wait_until_listening(process: subprocess.Popen, port: int, name: str, seconds: float,
                         output: Callable[[], str]) -> None:
    """Return once 127.0.0.1:`port` accepts a connection; a RuntimeError with the tail of `output()`
    when `process` exits first, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {output()[-2000:]}") from None
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen within {seconds:g} s")
