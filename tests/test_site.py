"""Several cameras in one process (runtime/site.py, runtime/cameras.py): the cameras file's errors,
a site of two real video files and a real MJPEG camera that goes away and comes back, against each
camera run alone, and the site's page (real HTTP, headless Chromium)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.runtime.cameras import CamerasFileError, load_site
from edgecnn.runtime.sources import SourceError
from edgecnn.runtime.web import LiveView
from browser import DevTools, find_chromium
from mjpeg_server import MjpegServer, parts as mjpeg_parts
from runtime_models import exported_models, synthetic_video

ROOT = Path(__file__).resolve().parents[1]
LOW = {"conf": 0.005, "track_conf": 0.008, "low_conf": 0.005, "max_det": 20, "threads": 1}
LINE = "      - name: mid\n        points: [[0.5, 0], [0.5, 1]]\n"
ZONE = "      - name: left\n        points: [[0, 0], [0.4, 0], [0.4, 1], [0, 1]]\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the cameras file


@pytest.mark.parametrize("text, match", [
    ("cameras:\n  - name: a\n    source: 0\n  - name: a\n    source: 1\n", r"cameras\[1\] \(a\): name: 'a' is used by another"),
    ("cameras:\n  - name: a\n    source: 0\n    colour: red\n", r"cameras\[0\] \(a\): unknown key 'colour'"),
    ("cameras:\n  - name: a\n    classes: [person]\n", r"cameras\[0\] \(a\): source is missing"),
    ("cameras:\n  - name: a b\n    source: 0\n", r"cameras\[0\]: name: expected letters"),
    ("cameras:\n  - name: a\n    source: rtsp://cam/live\n", r"cameras\[0\] \(a\): source: put the URL in quotes"),
    ("cameras:\n  - name: a\n    source: 0\n    fps: 0\n", r"cameras\[0\] \(a\): fps: expected"),
    ("cameras:\n  - name: a\n    source: 0\n    live: maybe\n", r"cameras\[0\] \(a\): live: expected true or false"),
    ("cameras:\n  - name: a\n    source: 0\n    record: {on: [party]}\n", r"\(a\): record: on: unknown event kind 'party'"),
    ("cameras:\n  - name: a\n    source: 0\n    record: {pre: 2, length: 9}\n", r"\(a\): record: unknown key 'length'"),
    ("colour: red\ncameras:\n  - name: a\n    source: 0\n", r"site.yaml: unknown key 'colour'"),
    ("sinks:\n  mqtt: \"broker.lan:1883\"\ncameras:\n  - name: a\n    source: 0\n", r"sinks: mqtt: 'broker.lan:1883' has no mqtt"),
    ("sinks:\n  kafka: \"kafka://x\"\ncameras:\n  - name: a\n    source: 0\n", r"sinks: unknown key 'kafka'"),
    ("sinks:\n  webhook: \"ftp://example.org/x\"\ncameras:\n  - name: a\n    source: 0\n", r"sinks: webhook: .* has no http"),
    ("cameras: []\n", r"at least one camera"),
    ("cameras:\n  - name: a\n  source: 0\n", r"not valid YAML.*must be in quotes"),
])
def test_cameras_file_errors_name_the_camera_and_the_key(tmp_path, text, match):
    with pytest.raises(CamerasFileError, match=match):
        load_site(write(tmp_path / "site.yaml", text))


def test_credentials_never_in_errors(tmp_path):
    for text in ("sinks:\n  mqtt: \"admin:hunter2@broker.lan:1883\"\ncameras:\n  - name: a\n    source: 0\n",
                 "sinks:\n  mqtt: \"tcp://admin:hunter2@broker.lan:1883\"\ncameras:\n  - name: a\n    source: 0\n",
                 "cameras:\n  - name: a\n    source: \"rtsp://admin:hunter2@10.0.0.5/live\"\n    zoom: 2\n"):
        with pytest.raises(CamerasFileError) as err:
            load_site(write(tmp_path / "site.yaml", text))
        assert "hunter2" not in str(err.value) and "site.yaml" in str(err.value)


def test_cameras_file_reads_paths_relative_to_it(tmp_path):
    site = load_site(write(tmp_path / "site.yaml", (
        "model: models/det.tflite\nthreads: 2\nsinks:\n  jsonl: out\n  mqtt: \"mqtt://u:p@127.0.0.1:1883\"\n"
        "cameras:\n  - name: door\n    source: \"rtsp://u:p@cam/1\"\n    fps: 5\n    live: false\n"
        "    classes: [person]\n    lines:\n" + LINE + "  - name: yard\n    source: yard.mp4\n    zones:\n" + ZONE)))
    assert site.settings == {"model": str(tmp_path / "models/det.tflite"), "threads": 2}
    assert site.sinks == {"jsonl": str(tmp_path / "out"), "mqtt": "mqtt://u:p@127.0.0.1:1883"}
    door, yard = site.cameras
    assert (door.name, door.fps, door.live, door.classes, door.label) == ("door", 5.0, False, ["person"], "rtsp://***@cam/1")
    assert yard.source == str(tmp_path / "yard.mp4") and yard.fps is None
    assert [r.name for r in door.counter(["person"], 30).regions] == ["mid"]
    assert yard.counter([], 30).zones[0].region.kind == "zone"


def test_the_documented_cameras_file_reads_with_its_comments(tmp_path):
    """The example in runtime/cameras.py, comments after values included (OpenCV alone would keep
    them in the values)."""
    import textwrap

    import edgecnn.runtime.cameras as cameras

    doc = cameras.__doc__
    example = textwrap.dedent(doc[doc.index("::") + 2:doc.index("Relative paths")]).strip("\n")
    site = load_site(write(tmp_path / "site.yaml", example))
    door, = site.cameras
    assert (door.fps, door.live, door.classes, door.record) == (5.0, True, ["person"], {"pre": 5, "post": 5, "on": ["line_cross"]})
    assert (site.settings["threads"], site.settings["interpreters"], site.settings["serve"]) == (1, 2, "0.0.0.0:8080")
    assert site.sinks["mqtt"] == "mqtt://broker.lan:1883" and site.sinks["queue"] == "/var/lib/edgecnn/queue"
    assert [r.name for r in door.counter(["person"], 30).regions] == ["door", "counter"]


# --------------------------------------------------------------------------- a site against each camera alone


def counts_file(path: Path) -> Path:
    return write(path, "lines:\n" + LINE.replace("      ", "  ") + "zones:\n" + ZONE.replace("      ", "  "))


def jsonl(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("time")  # the capture time differs run to run
    return rows


def camera_entry(name: str, source: str, extra: str = "") -> str:
    return f"  - name: {name}\n    source: \"{source}\"\n{extra}    lines:\n{LINE}    zones:\n{ZONE}"


def run_in_thread(overrides: dict) -> tuple[threading.Thread, threading.Event, dict]:
    from edgecnn.runtime.site import run_site

    stop, result = threading.Event(), {}

    def work():
        try:
            result["report"] = run_site(overrides, stop)
        except BaseException as err:  # surfaced by the test
            result["error"] = err

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, stop, result


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def lines(path: Path) -> int:
    return path.read_text().count("\n") if path.is_file() else 0


def events_of(path: Path, camera: str) -> list[dict]:
    if not path.is_file():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["camera"] == camera]


def moving_square(connection: int, i: int) -> np.ndarray:
    image = np.full((240, 320, 3), 60, np.uint8)
    cv2.rectangle(image, (10 + (7 * i) % 250, 60), (60 + (7 * i) % 250, 160), (0, 0, 255), -1)
    return image


@pytest.mark.slow
def test_site_of_files_and_a_camera_that_drops_matches_each_camera_alone(tmp_path):
    """Two video files and an MJPEG camera that stops and comes back on its port, in one process
    with two detector interpreters: each file's JSON lines equal `edgecnn track source=<file>` alone
    (each camera's frames tracked in order), each file camera's events
    equal a site of that camera alone, and the dropped camera gives camera_down then camera_up."""
    from edgecnn.runtime.app import run

    model = str(exported_models()["det_tflite"])
    a = synthetic_video(tmp_path / "a.mp4", frames=30)
    b = synthetic_video(tmp_path / "b.mp4", frames=20, size=(256, 192))
    camera = MjpegServer(moving_square, fps=15)
    port = camera.httpd.server_address[1]
    site = write(tmp_path / "site.yaml", f"model: {model}\ninterpreters: 2\nsinks:\n  jsonl: out\ncameras:\n"
                 + camera_entry("a", a) + camera_entry("b", b, "    classes: [car]\n")
                 + camera_entry("door", camera.url, "    fps: 10\n"))
    thread, stop, result = run_in_thread({"cameras": str(site), **LOW})
    events = tmp_path / "out" / "events.jsonl"
    try:
        wait_for(lambda: lines(tmp_path / "out" / "door.jsonl") >= 5, 120, "the camera's frames")
        camera.stop()
        wait_for(lambda: any(e["kind"] == "camera_down" for e in events_of(events, "door")), 30, "camera_down")
        time.sleep(1.0)
        camera = MjpegServer(moving_square, fps=15, port=port)
        wait_for(lambda: any(e["kind"] == "camera_up" for e in events_of(events, "door")), 30, "camera_up")
        wait_for(lambda: [lines(tmp_path / "out" / f"{n}.jsonl") for n in "ab"] == [30, 20], 120, "the files' frames")
    finally:
        stop.set()
        thread.join(timeout=60)
        camera.stop()
    assert "error" not in result, result.get("error")
    report = result["report"]["cameras"]
    assert report["a"]["frames"] == 30 and report["b"]["frames"] == 20 and report["door"]["reconnects"] >= 1
    kinds = [e["kind"] for e in events_of(events, "door") if e["kind"].startswith("camera")]
    assert kinds[:2] == ["camera_down", "camera_up"]

    compared = 0
    for name, video, extra in (("a", a, {}), ("b", b, {"classes": ["car"]})):
        alone = tmp_path / f"{name}_alone.jsonl"
        run({"model": model, "source": str(video), "jsonl": str(alone), "lines": str(counts_file(tmp_path / "c.yaml")),
             **LOW, **extra})
        assert jsonl(tmp_path / "out" / f"{name}.jsonl") == jsonl(alone)
        one = write(tmp_path / f"{name}.yaml", f"model: {model}\nsinks:\n  jsonl: {name}_site\ncameras:\n"
                    + camera_entry(name, video, "    classes: [car]\n" if extra else ""))
        from edgecnn.runtime.site import run_site

        run_site({"cameras": str(one), **LOW})
        own = events_of(tmp_path / f"{name}_site" / "events.jsonl", name)
        shared = events_of(events, name)
        assert [(e["id"], e["kind"]) for e in shared] == [(e["id"], e["kind"]) for e in own]
        compared += len(own)
    assert compared > 0  # tracks appeared, crossed, entered
    assert {t["class"] for row in jsonl(tmp_path / "out" / "b.jsonl") for t in row["tracks"]} <= {1}


def test_a_missing_file_source_names_the_camera(tmp_path):
    from edgecnn.runtime.site import run_site

    site = write(tmp_path / "site.yaml", f"model: {exported_models()['det_tflite']}\ncameras:\n"
                 "  - name: gone\n    source: nope.mp4\n")
    with pytest.raises(SourceError, match=r"cameras\[0\] \(gone\): source: cannot open .*no such file"):
        run_site({"cameras": str(site)})


# --------------------------------------------------------------------------- the site's page


def test_site_view_serves_each_camera_behind_the_token():
    view = LiveView("127.0.0.1", 0, token="s3cret", cameras=["door", "yard"])
    frame = np.full((48, 64, 3), 90, np.uint8)
    running = threading.Event()

    def publish():
        while not running.is_set():
            for name in ("door", "yard"):
                view.publish(frame, time.time(), lambda n=name: {"frames": 1, "fps": 5.0, "source": n}, channel=name)
            time.sleep(0.02)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        conn = http.client.HTTPConnection(view.host, view.port, timeout=10)
        for path in ("/", "/figures.json", "/site.mjpg", "/stream.mjpg?camera=door"):
            conn.request("GET", path)
            reply = conn.getresponse()
            assert (reply.status, reply.read()) == (401, b"401 unauthorized\n"), path
        conn.request("GET", "/?token=s3cret")
        reply = conn.getresponse()
        assert reply.status == 200 and b"edgecnn site" in reply.read()
        time.sleep(0.3)
        conn.request("GET", "/figures.json?token=s3cret")
        figures = json.loads(conn.getresponse().read())
        assert set(figures["cameras"]) == {"door", "yard"} and figures["cameras"]["yard"]["source"] == "yard"
        conn.request("GET", "/stream.mjpg?camera=nope&token=s3cret")
        reply = conn.getresponse()
        assert reply.status == 404 and reply.read()
        conn.request("GET", "/site.mjpg?token=s3cret")
        reply = conn.getresponse()
        seen = set()
        for headers, jpeg in mjpeg_parts(reply.fp):
            assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
            seen.add(headers["x-camera"])
            if seen == {"door", "yard"}:
                break
        conn.close()
    finally:
        running.set()
        view.close()


@pytest.mark.slow
def test_site_page_in_headless_chromium_shows_every_camera(tmp_path):
    browser = find_chromium()
    if not browser:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    pytest.importorskip("websocket", reason="websocket-client is not installed (the dev extra)")
    videos = [synthetic_video(tmp_path / f"{n}.mp4", frames=300, fps=15) for n in ("a", "b")]
    site = write(tmp_path / "site.yaml", f"model: {exported_models()['det_tflite']}\nserve: \"127.0.0.1:0\"\ncameras:\n"
                 + "".join(camera_entry(n, v, "    live: true\n") for n, v in zip(("door", "yard"), videos)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "track", f"cameras={site}", "max_det=5", "threads=1",
                             "conf=0.001", "track_conf=0.002", "low_conf=0.001"], env=env, stderr=subprocess.PIPE, text=True)
    url, chrome = None, None
    try:
        for line in proc.stderr:
            if "live view on " in line:
                url = line.split("live view on ")[1].split()[0]
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                break
        assert url, "edgecnn track cameras= did not start its live view"
        chrome = DevTools(browser, tmp_path / "profile")
        chrome.open_live_view(url, frames=6)
        wait = time.monotonic() + 30
        while chrome.evaluate("Object.values(cards).filter(c => c.shown > 0).length") < 2 and time.monotonic() < wait:
            time.sleep(0.2)
        names = chrome.evaluate("[...document.querySelectorAll('section h2 .name')].map(e => e.textContent)")
        shown = chrome.evaluate("Object.values(cards).map(c => c.shown)")
        text = chrome.evaluate("document.querySelector('#grid').innerText")
        shot = chrome.screenshot(tmp_path / "site_view.png")
    finally:
        if chrome is not None:
            chrome.close()
        proc.terminate()
        proc.wait(timeout=30)
    assert sorted(names) == ["door", "yard"] and min(shown) > 0
    assert text.count("FPS") == 2 and text.count("mid") == 2 and "up" in text
    assert shot is not None and shot.std() > 10


# --------------------------------------------------------------------------- the bundle runs a site


@pytest.mark.slow
def test_bundle_with_a_cameras_file_runs_the_site_from_run_sh(tmp_path):
    import tarfile

    from edgecnn.config import ConfigError
    from edgecnn.deploy.bundle import build_bundle
    from edgecnn.deploy.profiles import load_profile

    models = exported_models()
    video = synthetic_video(tmp_path / "door.mp4", frames=6)
    site = write(tmp_path / "site.yaml", f"sinks:\n  jsonl: {tmp_path / 'out'}\ncameras:\n" + camera_entry("door", video))
    bundle = build_bundle(load_profile("rpi5"), [models["det_tflite"]], None, tmp_path / "dist", cameras=site)
    with tarfile.open(bundle, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / bundle.name.removesuffix(".tar.gz")
    assert json.loads((root / "config.json").read_text())["cameras"] == "cameras.yaml"
    env = {**os.environ, "EDGECNN_PYTHON": sys.executable}
    ran = subprocess.run([str(root / "run.sh"), "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout.splitlines()[-1])["cameras"]["door"]["frames"] == 6
    assert lines(tmp_path / "out" / "door.jsonl") == 6
    with pytest.raises(ConfigError, match="sets model:, but the bundle ships its own models"):
        build_bundle(load_profile("rpi5"), [models["det_tflite"]], None, tmp_path / "dist",
                     cameras=write(tmp_path / "own.yaml", "model: det.tflite\ncameras:\n  - name: a\n    source: 0\n"))


def test_an_unreachable_camera_never_stops_the_site(tmp_path, caplog):
    """A camera down from the start: the site runs the others, names it in a warning and sends its
    camera_down; a clips directory that cannot be written is an error naming the file and the key."""
    from edgecnn.config import ConfigError
    from edgecnn.runtime.site import run_site
    from mqtt_broker import free_port

    model = exported_models()["det_tflite"]
    video = synthetic_video(tmp_path / "a.mp4", frames=10)
    site = write(tmp_path / "site.yaml", f"model: {model}\ninterpreters: 2\nsinks:\n  jsonl: out\ncameras:\n"
                 + camera_entry("a", video) + camera_entry("gone", f"http://u:hunter2@127.0.0.1:{free_port()}/x.mjpg"))
    thread, stop, result = run_in_thread({"cameras": str(site), **LOW})
    try:
        wait_for(lambda: lines(tmp_path / "out" / "a.jsonl") == 10, 120, "the file camera's frames")
        wait_for(lambda: any(e["kind"] == "camera_down" for e in events_of(tmp_path / "out" / "events.jsonl", "gone")),
                 30, "camera_down of the unreachable camera")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert result["report"]["cameras"]["a"]["frames"] == 10 and result["report"]["cameras"]["gone"]["frames"] == 0
    assert "cameras[1] (gone): source: http://***@127.0.0.1" in caplog.text and "hunter2" not in caplog.text
    (tmp_path / "file").write_text("")
    full = write(tmp_path / "clips.yaml", f"model: {model}\nsinks:\n  clips: file/clips\ncameras:\n" + camera_entry("a", video))
    with pytest.raises(ConfigError, match=r"clips.yaml: sinks: clips=.*not writable"):
        run_site({"cameras": str(full), **LOW})
