"""Events and counts to an MQTT broker (paho-mqtt 2.x, imported only when `mqtt=` is set).

Topics, under `prefix` (default `edgecnn`):
- `<prefix>/<camera>/events`: every `Event` as JSON, QoS 1, in order, through the on-disk
  `outbox.Outbox` (at-least-once: drop duplicates by the event's `id`).
- `<prefix>/<camera>/counts`: the camera's line counts and zone occupancy, QoS 1, retained, sent
  when they change; only the newest counts matter, so they are not queued: the newest are sent
  again on every (re)connect.
- `<prefix>/availability`: `online`, retained; the broker's last will sets it `offline` when the
  process dies, and a clean close sets it too.
- Home Assistant discovery (`homeassistant/sensor/<node>/<object>/config`, retained): a sensor per
  line direction (total_increasing) and per zone's occupancy (measurement), on the counts topic.

The broker is `mqtt://[user:password@]host[:port]` (or `mqtts://` for TLS). The password never
appears in logs or errors: names of the broker go through `without_credentials`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from edgecnn.config import ConfigError
from edgecnn.runtime.events import Event
from edgecnn.runtime.outbox import Courier, Outbox
from edgecnn.runtime.sources import without_credentials

LOG = logging.getLogger("edgecnn.mqtt")
PORTS = {"mqtt": 1883, "mqtts": 8883}
ACK_TIMEOUT_S = 10.0


def parse_broker(url: str, key: str = "mqtt") -> dict[str, Any]:
    """host, port, tls, username, password of a broker URL; a clear error naming `key` otherwise."""
    shown = without_credentials(str(url))
    parts = urlsplit(str(url))
    if parts.scheme not in PORTS or not parts.hostname:
        raise ConfigError(f"{key}={shown}: a broker is mqtt://host[:port] or mqtts://host[:port] "
                          "(user:password@ before the host if it needs them)")
    try:
        port = parts.port or PORTS[parts.scheme]
    except ValueError:
        raise ConfigError(f"{key}={shown}: the port is not a number") from None
    return {"host": parts.hostname, "port": port, "tls": parts.scheme == "mqtts",
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None, "shown": shown}


def object_id(*parts: str) -> str:
    """A Home Assistant object id: letters, digits, _ and - only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", "_".join(parts)).strip("_")


def discovery_configs(prefix: str, node: str, camera: str, counts: dict[str, Any],
                      discovery: str = "homeassistant") -> dict[str, dict[str, Any]]:
    """{config topic: payload} of the Home Assistant sensors for one camera's `Counter.report()`."""
    device = {"identifiers": [node], "name": node, "manufacturer": "edgecnn", "model": "edgecnn device runtime"}
    common = {"state_topic": f"{prefix}/{camera}/counts", "availability_topic": f"{prefix}/availability",
              "device": device}
    sensors = {}
    for line in counts.get("lines", {}):
        for direction in ("in", "out"):
            sensors[object_id(camera, line, direction)] = {
                "name": f"{camera} {line} {direction}", "state_class": "total_increasing",
                "value_template": f"{{{{ value_json.lines[{json.dumps(line)}].{direction} }}}}"}
    for zone in counts.get("zones", {}):
        sensors[object_id(camera, zone, "occupancy")] = {
            "name": f"{camera} {zone} occupancy", "state_class": "measurement",
            "value_template": f"{{{{ value_json.zones[{json.dumps(zone)}].occupancy }}}}"}
    return {f"{discovery}/sensor/{node}/{obj}/config": {**payload, **common, "unique_id": f"{node}_{obj}",
                                                        "object_id": f"{node}_{obj}"}
            for obj, payload in sensors.items()}


def count_state(counts: dict[str, Any]) -> dict[str, Any]:
    """What the counts topic carries: line counts and zone occupancy (per-track dwell stays local)."""
    return {"lines": counts.get("lines", {}),
            "zones": {name: {"occupancy": zone["occupancy"]} for name, zone in counts.get("zones", {}).items()}}


class MqttSink:
    """The `EventSink` for an MQTT broker; see the module docstring for its topics."""

    def __init__(self, url: str, queue_path: str | os.PathLike, prefix: str = "edgecnn", queue_max: int = 10_000,
                 discovery: str | None = "homeassistant", key: str = "mqtt"):
        try:
            import paho.mqtt.client as paho
        except ImportError:
            raise ConfigError(f"{key}= needs paho-mqtt 2.x: pip install 'paho-mqtt>=2,<3'") from None
        self.broker = parse_broker(url, key)
        self.prefix, self.discovery = prefix.strip("/"), discovery
        self.node = object_id(self.prefix)
        self.availability = f"{self.prefix}/availability"
        self.connected = threading.Event()
        self._counts: dict[str, dict[str, Any]] = {}  # camera → newest count state
        self._sent_counts: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.client = self._client(paho)
        self.outbox = Outbox(queue_path, queue_max, f"{key} {self.broker['shown']}")
        self.courier = Courier(self.outbox, self._send)
        self.client.connect_async(self.broker["host"], self.broker["port"], keepalive=30)
        self.client.loop_start()

    def _client(self, paho):
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{self.node}-{os.getpid()}")
        if self.broker["username"]:
            client.username_pw_set(self.broker["username"], self.broker["password"])
        if self.broker["tls"]:
            client.tls_set()
        client.will_set(self.availability, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=8)  # a broker that is back is found within 8 s
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            LOG.warning("mqtt %s refused the connection: %s", self.broker["shown"], reason_code)
            return
        LOG.info("mqtt connected to %s", self.broker["shown"])
        client.publish(self.availability, "online", qos=1, retain=True)
        with self._lock:
            self._sent_counts.clear()  # the broker may have restarted without its retained state
            cameras = list(self._counts)
        for camera in cameras:
            self._announce(camera)
        self.connected.set()
        self.courier.wake()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            LOG.warning("mqtt lost %s (%s); events queue on disk until it is back", self.broker["shown"], reason_code)

    def _send(self, messages: list[tuple[str, str]]) -> int:
        """Publish in order with QoS 1; how many, from the first, the broker acknowledged."""
        if not self.connected.is_set():
            return 0
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        done = 0
        for info in infos:
            try:
                info.wait_for_publish(ACK_TIMEOUT_S)
            except (RuntimeError, ValueError):  # not queued: the connection went away meanwhile
                break
            if not info.is_published():
                break
            done += 1
        return done

    def publish(self, event: Event) -> None:
        self.outbox.put(f"{self.prefix}/{event.camera}/events", event.to_json())

    def publish_counts(self, camera: str, counts: dict[str, Any], epoch: float) -> None:
        state = count_state(counts)
        with self._lock:
            first = camera not in self._counts
            self._counts[camera] = state
        if self.connected.is_set():
            if first:
                self._announce(camera)
            self._publish_state(camera)

    def _announce(self, camera: str) -> None:
        """Discovery configs and the newest counts of `camera` (retained)."""
        if self.discovery:
            configs = discovery_configs(self.prefix, self.node, camera, self._counts[camera], self.discovery)
            for topic, payload in configs.items():
                self.client.publish(topic, json.dumps(payload), qos=1, retain=True)
        self._publish_state(camera)

    def _publish_state(self, camera: str) -> None:
        with self._lock:
            state = self._counts[camera]
            if self._sent_counts.get(camera) == state:
                return
            self._sent_counts[camera] = state
        self.client.publish(f"{self.prefix}/{camera}/counts", json.dumps(state), qos=1, retain=True)

    def close(self) -> None:
        self.courier.close()
        if self.connected.is_set():
            self.client.publish(self.availability, "offline", qos=1, retain=True).wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()
