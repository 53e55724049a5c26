"""The cameras file: the cameras of one site, what each counts and records, and where events go.

YAML read with OpenCV's reader, as the counts file is (`counting.read_yaml`: no YAML library on
the device, nothing in the file runs). Site-wide keys first, then one entry per camera; `lines:`
and `zones:` take the counts file's entries. OpenCV's YAML needs every URL in quotes (unquoted,
`rtsp://cam` reads as a mapping), and reads `true`/`false` as words, which are accepted here::

    model: models/det.tflite       # site-wide app keys (SITE_KEYS); the command line wins
    threads: 1
    interpreters: 2                # detector copies side by side (2 x 1 thread beat 1 x 2 on 2 cores)
    serve: "0.0.0.0:8080"
    sinks:
      mqtt: "mqtt://broker.lan:1883"     # events and counts (credentials in the URL are never shown)
      webhook: "https://example.org/hook"
      jsonl: out/                         # <camera>.jsonl (tracks and counts per frame), events.jsonl
      clips: clips/                       # event clips and snapshots
      queue: /var/lib/edgecnn/queue       # where events wait while the broker or endpoint is away
    cameras:
      - name: door                        # letters, digits, - and _: it names files and MQTT topics
        source: "rtsp://user:pass@10.0.0.5:554/stream1"
        classes: [person]
        fps: 5                            # detect at most 5 frames a second from this camera
        live: true                        # optional: as `live=` (a file played at its frame rate)
        record: {pre: 5, post: 5, on: [line_cross]}  # this camera's clips (default: clip_* keys; on: [] none)
        lines:
          - name: door
            points: [[0.5, 0.0], [0.5, 1.0]]
        zones:
          - name: counter
            points: [[0.1, 0.6], [0.4, 0.6], [0.4, 1.0], [0.1, 1.0]]
            dwell: 30

Relative paths (model, reid, jsonl, clips, file sources) are relative to the cameras file. Errors
name the file, the camera and the key; URLs in them lose their credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from edgecnn.runtime.counting import Counter, Region, parse_entry, read_yaml
from edgecnn.runtime.events import KINDS
from edgecnn.runtime.sources import describe, without_credentials

# site-wide app keys a cameras file may set (the rest come from the command line or config.json)
SITE_KEYS = {"model", "reid", "threads", "interpreters", "classes", "conf", "iou", "max_det", "imgsz", "serve", "token_file",
             "serve_fps", "log_every", "mqtt_prefix", "mqtt_discovery", "queue_max", "clip_on", "clip_pre", "clip_post",
             "clip_fps", "clip_format", "clip_days", "clip_mb"}
PATH_KEYS = {"model", "reid", "token_file"}
SINK_SCHEMES = {"mqtt": ("mqtt", "mqtts"), "webhook": ("http", "https")}
SINK_KEYS = {*SINK_SCHEMES, "jsonl", "clips", "queue"}
CAMERA_KEYS = {"name", "source", "live", "classes", "fps", "lines", "zones", "record"}
RECORD_KEYS = {"pre", "post", "on", "fps"}  # the clip keys clip_pre, clip_post, clip_on, clip_fps, per camera
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


class CamerasFileError(ValueError):
    """A cameras file that cannot run; the message names the file, the camera and the key."""


@dataclass
class Camera:
    """One camera of the site, as its cameras file entry gives it."""

    name: str
    source: str | int
    live: bool | None = None  # None: the app's default (live for cameras and streams, in order for files)
    classes: list | None = None
    fps: float | None = None  # most frames a second to detect at; None: as many as come
    entries: dict[str, list] = field(default_factory=dict)  # "lines"/"zones" → counts-file entries
    record: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "<file>: cameras[i] (name)", for errors found later

    @property
    def label(self) -> str:
        """The source as logs, events and pages may show it."""
        return without_credentials(str(self.source))

    def counter(self, names: Sequence[str], max_age: int) -> Counter | None:
        """The camera's line and zone counter (None without lines and zones)."""
        regions: dict[str, Region] = {}
        for section, kind in (("lines", "line"), ("zones", "zone")):
            for i, entry in enumerate(self.entries.get(section, [])):
                region = parse_entry(entry, kind, f"{self.where}: {section}[{i}]", names)
                if region.name in regions:
                    raise CamerasFileError(f"{self.where}: {section}[{i}]: the name '{region.name}' is used twice")
                regions[region.name] = region
        return Counter(list(regions.values()), max_age=max_age) if regions else None


@dataclass
class Site:
    path: Path
    settings: dict[str, Any]  # SITE_KEYS the file sets
    sinks: dict[str, str]  # SINK_KEYS the file sets (directories resolved against the file)
    cameras: list[Camera]


def masked(text: str) -> str:
    """`without_credentials`, also for a URL written without its scheme (`user:pass@host`)."""
    text = without_credentials(str(text))
    return text if "//" in text else re.sub(r"^[^@/\s]*@", "***@", text)


def load_site(path: str | Path) -> Site:
    """Read and check a cameras file; see the module docstring for its keys."""
    path = Path(path)
    try:
        content = read_yaml(path, expected="a mapping with 'cameras:' and site-wide keys", kind="cameras file")
    except ValueError as err:
        raise CamerasFileError(f"{err}; values with a colon (URLs, host:port) must be in quotes: \"rtsp://…\"") from None
    unknown = set(content) - SITE_KEYS - {"sinks", "cameras"}
    if unknown:
        raise CamerasFileError(f"{path}: unknown key '{sorted(unknown)[0]}'; site-wide keys: "
                               f"{', '.join(sorted(SITE_KEYS | {'sinks', 'cameras'}))}")
    settings = {k: _resolved(path, v) if k in PATH_KEYS else v for k, v in content.items() if k in SITE_KEYS}
    entries = content.get("cameras")
    if not isinstance(entries, list) or not entries:
        raise CamerasFileError(f"{path}: 'cameras' must be a list with at least one camera (- name: …, source: …)")
    cameras: list[Camera] = []
    for i, entry in enumerate(entries):
        camera = parse_camera(entry, path, f"{path}: cameras[{i}]")
        if any(c.name == camera.name for c in cameras):
            raise CamerasFileError(f"{camera.where}: name: '{camera.name}' is used by another camera; "
                                   "each camera needs its own name")
        cameras.append(camera)
    return Site(path, settings, parse_sinks(content.get("sinks"), path), cameras)


def parse_camera(entry: Any, path: Path, where: str) -> Camera:
    if not isinstance(entry, dict):
        raise CamerasFileError(f"{where}: expected a mapping with name and source")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise CamerasFileError(f"{where}: name: expected letters, digits, '-' or '_' (it names files and MQTT "
                               f"topics), got {name!r}")
    where = f"{where} ({name})"
    unknown = set(entry) - CAMERA_KEYS
    if unknown:
        raise CamerasFileError(f"{where}: unknown key '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(CAMERA_KEYS))}")
    source = entry.get("source")
    if isinstance(source, dict):  # OpenCV read an unquoted `rtsp://host/…` as {"rtsp": "//host/…"}
        raise CamerasFileError(f"{where}: source: put the URL in quotes (source: \"rtsp://…\")")
    if source is None or source == "":
        raise CamerasFileError(f"{where}: source is missing (a webcam index, video file, rtsp/http URL, …)")
    if not isinstance(source, (int, str)):
        raise CamerasFileError(f"{where}: source: expected a URL, a path or a webcam index, got {masked(source)!r}")
    if isinstance(source, str) and describe(source) == "file":
        source = _resolved(path, source)
    fps = entry.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or fps <= 0):
        raise CamerasFileError(f"{where}: fps: expected frames a second > 0, got {fps!r}")
    classes = entry.get("classes")
    if classes is not None and not isinstance(classes, list):
        classes = [classes]
    lines_zones = {}
    for section in ("lines", "zones"):
        value = entry.get(section) or []
        if not isinstance(value, list):
            raise CamerasFileError(f"{where}: {section}: expected a list of entries (- name: …, points: …)")
        lines_zones[section] = value
    return Camera(name, source, _flag(entry.get("live"), f"{where}: live"), classes,
                  float(fps) if fps is not None else None, lines_zones, parse_record(entry.get("record"), where), where)


def parse_record(record: Any, where: str) -> dict[str, Any]:
    if record is None:
        return {}
    if not isinstance(record, dict):
        raise CamerasFileError(f"{where}: record: expected a mapping ({', '.join(sorted(RECORD_KEYS))})")
    unknown = set(record) - RECORD_KEYS
    if unknown:
        raise CamerasFileError(f"{where}: record: unknown key '{sorted(unknown)[0]}'; allowed: "
                               f"{', '.join(sorted(RECORD_KEYS))}")
    for key in ("pre", "post", "fps"):
        if key in record and (not isinstance(record[key], (int, float)) or record[key] < 0):
            raise CamerasFileError(f"{where}: record: {key}: expected a number >= 0, got {record[key]!r}")
    on = record.get("on", [])
    on = on if isinstance(on, list) else [on]
    unknown = [kind for kind in on if kind not in KINDS]
    if unknown:
        raise CamerasFileError(f"{where}: record: on: unknown event kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
    return {**record, "on": on} if "on" in record else record


def parse_sinks(sinks: Any, path: Path) -> dict[str, str]:
    if sinks is None:
        return {}
    if not isinstance(sinks, dict):
        raise CamerasFileError(f"{path}: sinks: expected a mapping ({', '.join(sorted(SINK_KEYS))})")
    unknown = set(sinks) - SINK_KEYS
    if unknown:
        raise CamerasFileError(f"{path}: sinks: unknown key '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(SINK_KEYS))}")
    found = {}
    for key, value in sinks.items():
        if isinstance(value, dict):  # an unquoted URL (see parse_camera)
            raise CamerasFileError(f"{path}: sinks: {key}: put the URL in quotes ({key}: \"…://…\")")
        if not isinstance(value, str) or not value:
            raise CamerasFileError(f"{path}: sinks: {key}: expected a {'URL' if key in SINK_SCHEMES else 'directory'}")
        found[key] = check_url(value, SINK_SCHEMES[key], f"{path}: sinks: {key}") if key in SINK_SCHEMES \
            else _resolved(path, value)
    return found


def check_url(url: str, schemes: Sequence[str], where: str) -> str:
    """The URL's shape only (scheme and host); nothing is contacted here."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or "//" not in url:
        raise CamerasFileError(f"{where}: {masked(url)!r} has no {' or '.join(schemes)} scheme; write "
                               f"{schemes[0]}://host[:port]…")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError as err:
        raise CamerasFileError(f"{where}: {masked(url)!r}: {err}") from None
    if not host:
        raise CamerasFileError(f"{where}: {masked(url)!r} names no host")
    return url


def _flag(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in WORDS:
        return WORDS[value.lower()]
    raise CamerasFileError(f"{where}: expected true or false, got {value!r}")


def _resolved(path: Path, value: Any) -> Any:
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    return str(path.parent / value)
