"""A real Mosquitto broker (Debian's /usr/sbin/mosquitto) on a free loopback port, and a subscriber.

`Broker.start()` / `stop()` may be called again: the port stays the same, so clients reconnect to a
restarted broker, and it keeps its state on disk as a broker service does (mosquitto saves it when
stopped): the subscriber's persistent session survives a restart, so what publishers deliver before
the subscriber is back waits for it. Used by tests/test_event_sinks.py and benchmarks/events.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.listening import wait_until_listening

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        # as root, mosquitto drops to its own user, which cannot write a test's directory: stay root
        user = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {workdir}/\n{user}log_dest stderr\nmax_queued_messages 100000\n")
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log)
        wait_until_listening(self.process, self.port, "mosquitto", 10, self.log.read_text)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class Subscriber:
    """Collects (topic, payload, retained) of everything under `topics`; reconnects on its own."""

    def __init__(self, port: int, topics: list[str], client_id: str = "test-subscriber"):
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, str, bool]] = []
        self.received_at: list[float] = []  # time.time() of each message's arrival, as `messages`
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        # a persistent session (clean_session=False): QoS 1 messages published while this client is
        # away wait on the broker, as for a real consumer
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe([(t, 1) for t in topics]), None)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the subscriber did not subscribe within 10 s")

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))
            self.received_at.append(time.time())

    def payloads(self, suffix: str) -> list[dict]:
        return [payload for payload, _ in self.arrivals(suffix)]

    def arrivals(self, suffix: str) -> list[tuple[dict, float]]:
        """(JSON payload, arrival time) of the messages on topics ending with `suffix`, in arrival order."""
        with self._lock:
            return [(json.loads(p), at) for (t, p, _), at in zip(self.messages, self.received_at) if t.endswith(suffix)]

    def wait_for(self, suffix: str, n: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(got := self.payloads(suffix)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
