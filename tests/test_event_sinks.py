"""Event sinks against real servers started here: Mosquitto (QoS 1 order across a broker restart,
retained availability and Home Assistant discovery) and an HTTP receiver that fails before it
accepts; the on-disk queue's bound drops and counts."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time

import pytest

from edgecnn.config import ConfigError
from edgecnn.runtime.events import Event
from edgecnn.runtime.outbox import Courier, Outbox
from edgecnn.runtime.webhook import WebhookSink
from mqtt_broker import Broker, Subscriber, mosquitto_available

needs_mosquitto = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto not installed (apt install mosquitto)")
COUNTS = {"lines": {"door": {"in": 1, "out": 0}}, "zones": {"desk": {"occupancy": 2, "dwell_s": {"3": 1.5}}}}


def events(n: int, camera: str = "gate", start: int = 0) -> list[Event]:
    return [Event(camera, "line_cross", 1_700_000_000 + i, i, track=i, region="door", direction="in")
            for i in range(start, start + n)]


def first_arrivals(received: list[dict]) -> list[int]:
    seen, order = set(), []
    for record in received:
        if record["id"] not in seen:
            seen.add(record["id"])
            order.append(record["frame"])
    return order


@pytest.fixture
def broker(tmp_path):
    pytest.importorskip("paho.mqtt")
    if not mosquitto_available():
        pytest.skip("mosquitto not installed (apt install mosquitto)")
    broker = Broker(tmp_path).start()
    yield broker
    broker.stop()


@needs_mosquitto
@pytest.mark.slow
def test_mqtt_delivers_in_order_across_a_broker_restart(tmp_path, broker):
    from edgecnn.runtime.mqtt import MqttSink

    sink = MqttSink(broker.url, tmp_path / "q.sqlite", prefix="site")
    subscriber = Subscriber(broker.port, ["site/#"])
    assert sink.connected.wait(10)
    for event in events(20):
        sink.publish(event)
    assert len(subscriber.wait_for("/events", 20)) >= 20
    broker.stop()  # events made while the broker is away wait on disk
    for event in events(30, start=20):
        sink.publish(event)
    time.sleep(0.5)
    assert len(sink.outbox) == 30
    broker.start()
    received = subscriber.wait_for("/events", 50, timeout=60)
    sink.close()
    subscriber.close()
    assert first_arrivals(received) == list(range(50))  # all, in order; repeats only of what came before
    assert len(sink.outbox.path.read_bytes()) > 0 and sink.courier.failures >= 1


@needs_mosquitto
def test_mqtt_availability_discovery_and_counts_are_retained(tmp_path, broker):
    from edgecnn.runtime.mqtt import MqttSink

    sink = MqttSink(broker.url, tmp_path / "q.sqlite", prefix="shop")
    assert sink.connected.wait(10)
    sink.publish_counts("door-cam", COUNTS, time.time())
    time.sleep(0.5)
    # a consumer that comes later still gets state, discovery and availability: they are retained
    late = Subscriber(broker.port, ["shop/#", "homeassistant/#"], client_id="late")
    late.wait_for("/config", 3)
    retained = {t: json.loads(p) if p.startswith("{") else p for t, p, r in late.messages if r}
    assert retained["shop/availability"] == "online"
    assert retained["shop/door-cam/counts"] == {"lines": {"door": {"in": 1, "out": 0}}, "zones": {"desk": {"occupancy": 2}}}
    config = retained["homeassistant/sensor/shop/door-cam_door_in/config"]
    assert config["state_topic"] == "shop/door-cam/counts" and config["availability_topic"] == "shop/availability"
    assert config["value_template"] == '{{ value_json.lines["door"].in }}'
    assert retained["homeassistant/sensor/shop/door-cam_desk_occupancy/config"]["state_class"] == "measurement"
    sink.close()
    time.sleep(0.3)
    assert [p for t, p, _ in late.messages if t == "shop/availability"][-1] == "offline"
    late.close()


def test_broker_url_errors_name_the_key_and_hide_the_password(tmp_path):
    pytest.importorskip("paho.mqtt")
    from edgecnn.runtime.mqtt import MqttSink

    with pytest.raises(ConfigError, match=r"mqtt=broker.local:1883: a broker is mqtt://") as err:
        MqttSink("broker.local:1883", tmp_path / "q.sqlite")
    with pytest.raises(ConfigError, match=r"mqtt=mqtt://\*\*\*@host:x") as err:
        MqttSink("mqtt://user:s3cret@host:x", tmp_path / "q.sqlite")
    assert "s3cret" not in str(err.value)


class Receiver:
    """An HTTP endpoint that answers 503 to the first `fail` POSTs, then 200; keeps the bodies."""

    def __init__(self, fail: int):
        self.bodies, self.headers, self.paths, self.calls = [], [], [], 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                if receiver.calls <= fail:
                    self.send_error(503)
                    return
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                receiver.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_webhook_retries_with_backoff_then_delivers_in_order(tmp_path, caplog):
    receiver = Receiver(fail=3)
    sink = WebhookSink(f"http://hook:pa55word@127.0.0.1:{receiver.port}/events?key=t0ken", tmp_path / "hook.sqlite")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for event in events(5):
            sink.publish(event)
        while receiver.calls < 8 and time.monotonic() - started < 15:
            time.sleep(0.01)
    took = time.monotonic() - started
    sink.close()
    receiver.close()
    assert [b["frame"] for b in receiver.bodies] == [0, 1, 2, 3, 4] and receiver.calls == 8
    assert 0.5 + 1 + 2 - 0.2 <= took < 10  # three failures: waits of 0.5, 1 and 2 s
    assert receiver.headers[0]["Authorization"] == "Basic aG9vazpwYTU1d29yZA=="  # hook:pa55word
    assert receiver.headers[2]["Idempotency-Key"] == receiver.bodies[2]["id"]
    assert "HTTP 503" in caplog.text and "***@127.0.0.1" in caplog.text and "/events?…" in caplog.text
    assert "pa55word" not in caplog.text and "t0ken" not in caplog.text
    assert receiver.paths[0] == "/events?key=t0ken"


def test_queue_bound_drops_the_oldest_counts_and_logs(tmp_path, caplog):
    outbox = Outbox(tmp_path / "q.sqlite", max_items=10, name="test queue")
    with caplog.at_level(logging.WARNING):
        for i in range(25):
            outbox.put("t", str(i))
    assert outbox.dropped == 15 and len(outbox) == 10
    assert "test queue: queue full (10 messages): dropped" in caplog.text
    got = []
    courier = Courier(outbox, lambda batch: got.extend(p for _, p in batch) or len(batch), batch=4)
    assert courier.flush(5)
    courier.close()
    assert got == [str(i) for i in range(15, 25)]


def test_queue_survives_a_restart(tmp_path):
    outbox = Outbox(tmp_path / "q.sqlite")
    for i in range(3):
        outbox.put("t", str(i))
    outbox.close()
    again = Outbox(tmp_path / "q.sqlite")
    assert [p for _, _, p in again.head(10)] == ["0", "1", "2"]
    again.close()


def test_a_queue_belongs_to_one_process(tmp_path):
    first = Outbox(tmp_path / "q.sqlite", name="mqtt")
    script = ("import sys; from edgecnn.runtime.outbox import Outbox\n"
              f"try:\n    Outbox({str(tmp_path / 'q.sqlite')!r}, name='mqtt')\n"
              "except OSError as err:\n    print(err)\n")
    import subprocess
    import sys

    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    first.close()
    assert "is in use by another process; give each process its own queue_dir=" in other.stdout
