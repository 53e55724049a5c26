"""`edgecnn track` with event keys: a real exported detector on a synthetic video, events to a JSON
lines file and a real Mosquitto broker, clips on disk; the events equal an offline replay of the
app's own tracks (runtime/offline.py), and the MQTT subscriber gets every one in order."""

from __future__ import annotations

import json

import cv2
import pytest

from edgecnn.config import ConfigError
from edgecnn.runtime.app import run
from edgecnn.runtime.counting import load_regions
from edgecnn.runtime.offline import replay_events
from runtime_models import NAMES, exported_models, synthetic_video
from mqtt_broker import Broker, Subscriber, mosquitto_available

LOW = {"conf": 0.005, "track_conf": 0.008, "low_conf": 0.005, "max_det": 20}
COUNTS = """lines:
  - name: mid
    points: [[0.5, 0.0], [0.5, 1.0]]
zones:
  - name: right
    points: [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
    dwell: 1.0
"""
FPS = 15.0


@pytest.mark.slow
def test_track_events_equal_the_offline_replay_and_reach_mqtt(tmp_path):
    pytest.importorskip("paho.mqtt")
    if not mosquitto_available():
        pytest.skip("mosquitto not installed (apt install mosquitto)")
    models = exported_models()
    video = synthetic_video(tmp_path / "clip.mp4", frames=45, fps=FPS)
    (tmp_path / "counts.yaml").write_text(COUNTS)
    broker = Broker(tmp_path).start()
    subscriber = Subscriber(broker.port, ["site/#"])
    try:
        report = run({"model": str(models["det_tflite"]), "source": str(video), "threads": 2, **LOW,
                      "lines": str(tmp_path / "counts.yaml"), "jsonl": str(tmp_path / "tracks.jsonl"),
                      "events": str(tmp_path / "events.jsonl"), "clips": str(tmp_path / "clips"), "camera": "gate",
                      "mqtt": broker.url, "mqtt_prefix": "site", "queue_dir": str(tmp_path / "queue")})
        live = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        received = subscriber.wait_for("gate/events", len(live))
    finally:
        subscriber.close()
        broker.stop()
    offline = replay_events(tmp_path / "tracks.jsonl", load_regions([tmp_path / "counts.yaml"], NAMES), (320, 240),
                            "gate", NAMES, fps=FPS)
    key = ("id", "kind", "track", "region", "direction", "frame")
    assert [tuple(e.get(k) for k in key) for e in live] == [tuple(e.as_dict().get(k) for k in key) for e in offline]
    assert {"zone_enter", "dwell"} <= {e["kind"] for e in live}
    assert [e["id"] for e in received] == [e["id"] for e in live]  # in order, none lost, none repeated here
    assert report["events_ms_p50"] >= 0
    clips = {e["clip"] for e in live if "clip" in e}
    assert clips and all(e.get("snapshot") for e in live if e["kind"] in ("zone_enter", "dwell"))
    for clip in clips:
        capture = cv2.VideoCapture(str(tmp_path / "clips" / clip))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) > 0
        capture.release()


def test_track_event_key_errors_name_the_key(tmp_path):
    models = exported_models()
    video = synthetic_video(tmp_path / "clip.mp4", frames=3)
    (tmp_path / "a-file").write_text("")
    base = {"model": str(models["det_tflite"]), "source": str(video), "queue_dir": str(tmp_path / "q")}
    with pytest.raises(ConfigError, match=r"mqtt=broker\.lan: a broker is mqtt://"):
        run({**base, "mqtt": "broker.lan"})
    with pytest.raises(ConfigError, match=r"clips=.*a-file/clips: the clips directory is not writable"):
        run({**base, "clips": str(tmp_path / "a-file" / "clips")})
    with pytest.raises(ConfigError, match=r"webhook=ftp://\*\*\*@example\.org: a webhook is an http://") as err:
        run({**base, "webhook": "ftp://me:secret@example.org"})
    assert "secret" not in str(err.value)
    with pytest.raises(ConfigError, match=r"camera=gate/1: a camera name is"):
        run({**base, "events": str(tmp_path / "e.jsonl"), "camera": "gate/1"})
