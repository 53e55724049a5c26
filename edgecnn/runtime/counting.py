"""Line and zone counts from tracks: who crossed which line in which direction, who is in which zone.

A track's position is its box's bottom centre (where it stands). A line counts a track once per
direction: `in` when it goes from the line's left to its right, looking from the first point to
the second (on screen, y down), `out` the other way, and only where it passes within the segment.
A zone reports how many tracks are in it now and how long each has stayed. Both use a hysteresis
band (`band` pixels, per entry): a side or a zone changes only once the point is more than `band`
from the line or the zone's edge, so a track standing on a line never counts twice.

The counts file is YAML, read with OpenCV's YAML reader (`cv2.FileStorage`): the device has
OpenCV but no YAML library. Points are fractions of the frame when every coordinate is in [0, 1],
pixels otherwise (they may lie outside the frame)::

    lines:
      - name: door
        points: [[0.5, 0.0], [0.5, 1.0]]
        classes: [person]          # optional: names or ids; default every class
        band: 8                    # optional: hysteresis in pixels (default 6)
    zones:
      - name: counter
        points: [[0.1, 0.6], [0.4, 0.6], [0.4, 1.0], [0.1, 1.0]]
        dwell: 30                  # optional, zones: a `dwell` event when a visit passes 30 s
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import cv2
import numpy as np

from edgecnn.config import ConfigError

if TYPE_CHECKING:
    from edgecnn.runtime.tracker import Tracks

DEFAULT_BAND = 6.0  # pixels: above a detector's frame-to-frame jitter of a standing person's feet
ENTRY_KEYS = {"name", "points", "classes", "band", "dwell"}
# a zone summary's per-track dwell keeps the tracks alive plus this many deleted ones: a day of a
# busy door is thousands of tracks; the last hundred show who came lately, the running sums the rest
RECENT_TRACKS = 100


@dataclass
class Region:
    """A named line (2 points) or zone (3+ points), in pixels once `fit` has seen the frame size."""

    name: str
    kind: str  # "line" | "zone"
    points: np.ndarray  # (P, 2) float, as given
    classes: tuple[int, ...] | None
    band: float
    dwell: float | None = None  # zones: seconds after which a visit raises a `dwell` event
    pixels: np.ndarray | None = None

    def fit(self, width: int, height: int) -> None:
        fractions = bool(((self.points >= 0) & (self.points <= 1)).all())
        self.pixels = self.points * (width, height) if fractions else self.points.astype(np.float64)

    def wants(self, classes: np.ndarray) -> np.ndarray:
        return np.ones(len(classes), bool) if self.classes is None else np.isin(classes, self.classes)


def side_of_line(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance of each point from the line through a→b (positive: on its right on screen)
    and the position along the segment of each point's projection (0 at a, 1 at b)."""
    direction = b - a
    length = float(np.hypot(*direction)) or 1.0
    rel = points - a
    signed = (direction[0] * rel[:, 1] - direction[1] * rel[:, 0]) / length
    along = (rel @ direction) / length**2
    return signed, along


def polygon_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Signed distance of each point to the polygon's edge: positive inside, negative outside."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points], np.float64)


@dataclass
class LineCount:
    region: Region
    counts: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    side: dict[int, int] = field(default_factory=dict)  # track → -1 left, +1 right (last decisive)
    counted: dict[int, set] = field(default_factory=dict)  # track → directions already counted

    def update(self, ids: np.ndarray, feet: np.ndarray) -> list[dict]:
        a, b = self.region.pixels
        signed, along = side_of_line(feet, a, b)
        crossings = []
        for tid, s, t in zip(ids.tolist(), signed, along):
            if abs(s) <= self.region.band:
                continue  # in the band: the side stays what it was
            now, before = (1 if s > 0 else -1), self.side.get(tid)
            self.side[tid] = now
            if before is None or now == before or not 0 <= t <= 1:
                continue  # first sight, same side, or round the segment's end
            direction = "in" if now > 0 else "out"
            done = self.counted.setdefault(tid, set())
            if direction not in done:
                done.add(direction)
                self.counts[direction] += 1
                crossings.append({"line": self.region.name, "id": tid, "direction": direction})
        return crossings

    def forget(self, gone: set[int]) -> None:
        for tid in gone:
            self.side.pop(tid, None)
            self.counted.pop(tid, None)

    def report(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass
class ZoneCount:
    """A zone's occupancy, visits and dwell. Memory stays bounded however long the site runs: the
    per-track detail covers the tracks alive now and the `RECENT_TRACKS` last deleted ones; the
    run's figures over all tracks (count, total, max) are running sums."""

    region: Region
    entered: dict[int, float] = field(default_factory=dict)  # track inside → time it entered
    dwell: dict[int, float] = field(default_factory=dict)  # live track → seconds inside, finished visits
    finished: deque = field(default_factory=lambda: deque(maxlen=RECENT_TRACKS))  # (track, seconds), deleted
    tracks: int = 0  # deleted tracks that visited: their dwell is in dwell_total / dwell_max
    dwell_total: float = 0.0
    dwell_max: float = 0.0
    visits: int = 0
    occupancy_max: int = 0

    def update(self, ids: np.ndarray, feet: np.ndarray, now: float) -> list[dict]:
        distance = polygon_distance(feet, self.region.pixels)
        events = []
        for tid, d in zip(ids.tolist(), distance):
            if d > self.region.band and tid not in self.entered:
                self.entered[tid] = now
                self.visits += 1
                events.append({"zone": self.region.name, "id": tid, "event": "enter"})
            elif d < -self.region.band and tid in self.entered:
                self._leave(tid, now)
                events.append({"zone": self.region.name, "id": tid, "event": "leave"})
        self.occupancy_max = max(self.occupancy_max, len(self.entered))
        return events

    def _leave(self, tid: int, now: float) -> None:
        self.dwell[tid] = self.dwell.get(tid, 0.0) + now - self.entered.pop(tid)

    def forget(self, gone: dict[int, float]) -> None:
        """Tracks the tracker has deleted leave at the time they were last seen; their dwell moves
        into the running figures and the window of recent tracks."""
        for tid in set(gone) & set(self.entered):
            self._leave(tid, gone[tid])
        for tid in sorted(set(gone) & set(self.dwell)):
            seconds = self.dwell.pop(tid)
            self.tracks, self.dwell_total = self.tracks + 1, self.dwell_total + seconds
            self.dwell_max = max(self.dwell_max, seconds)
            self.finished.append((tid, seconds))

    def report(self, now: float) -> dict[str, Any]:
        inside = {tid: round(self.dwell.get(tid, 0.0) + now - t, 2) for tid, t in self.entered.items()}
        return {"occupancy": len(inside), "dwell_s": inside}

    def summary(self, now: float) -> dict[str, Any]:
        """Mean and max dwell per track over the whole run; `dwell_s` per track for the tracks alive
        and the last `RECENT_TRACKS` deleted ones."""
        live = {tid: self.dwell.get(tid, 0.0) for tid in {*self.dwell, *self.entered}}
        for tid, t in self.entered.items():
            live[tid] += now - t
        tracks = self.tracks + len(live)
        detail = {**dict(self.finished), **live}
        return {"occupancy": len(self.entered), "occupancy_max": self.occupancy_max, "visits": self.visits,
                "dwell_s_mean": round((self.dwell_total + sum(live.values())) / tracks, 2) if tracks else None,
                "dwell_s_max": round(max([self.dwell_max, *live.values()]), 2) if tracks else None,
                "dwell_s": {str(tid): round(v, 2) for tid, v in sorted(detail.items())}}


class Counter:
    """Line and zone counts over a run; `update` once per frame with that frame's tracks.

    A track unseen for more than `max_age` frames (the tracker's key) has been deleted and its
    ID never returns: it leaves its zones when it was last seen and its state is dropped.
    """

    def __init__(self, regions: Sequence[Region], max_age: int = 30):
        self.max_age = max_age
        self.lines = [LineCount(r) for r in regions if r.kind == "line"]
        self.zones = [ZoneCount(r) for r in regions if r.kind == "zone"]
        self.regions = list(regions)
        self.last_seen: dict[int, tuple[int, float]] = {}  # track → (frame, time)
        self.frames, self.now = 0, 0.0
        self.events: list[dict] = []  # this frame's crossings and zone entries/exits
        self._size: tuple[int, int] | None = None

    def update(self, tracks: Tracks, now: float, size: tuple[int, int]) -> list[dict]:
        """Count this frame's `tracks` (in a `size` = (width, height) frame) at time `now` (seconds);
        returns the frame's events."""
        if size != self._size:
            for region in self.regions:
                region.fit(*size)
            self._size = size
        self.frames, self.now = self.frames + 1, now
        boxes = tracks.boxes
        feet = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]]).astype(np.float64)
        ids, classes = np.asarray(tracks.ids, int), np.asarray(tracks.classes, int)
        self.events = []
        for line in self.lines:
            keep = line.region.wants(classes)
            self.events += line.update(ids[keep], feet[keep])
        for zone in self.zones:
            keep = zone.region.wants(classes)
            self.events += zone.update(ids[keep], feet[keep], now)
        for tid in ids.tolist():
            self.last_seen[tid] = (self.frames, now)
        gone = {tid: t for tid, (frame, t) in self.last_seen.items() if self.frames - frame > self.max_age}
        if gone:
            for tid in gone:
                del self.last_seen[tid]
            for line in self.lines:
                line.forget(set(gone))
            for zone in self.zones:
                zone.forget(gone)
        return self.events

    def report(self) -> dict[str, Any]:
        """Counts now: {"lines": {name: {"in", "out"}}, "zones": {name: {"occupancy", "dwell_s"}}}."""
        return {"lines": {c.region.name: c.report() for c in self.lines},
                "zones": {z.region.name: z.report(self.now) for z in self.zones}}

    def summary(self) -> dict[str, Any]:
        """The run's counts: lines as in `report`, zones with visits, peak occupancy and dwell times."""
        return {"lines": {c.region.name: c.report() for c in self.lines},
                "zones": {z.region.name: z.summary(self.now) for z in self.zones}}


def open_counter(cfg: Mapping[str, Any], names: Sequence[str]) -> Counter | None:
    """The counter the app's keys `lines` and `zones` ask for (None without them)."""
    paths = [cfg[key] for key in ("lines", "zones") if cfg[key]]
    return Counter(load_regions(paths, names), max_age=cfg.get("max_age", 30)) if paths else None


# --------------------------------------------------------------------------- the counts file


def read_yaml(path: Path, expected: str = "a mapping with 'lines:' and/or 'zones:'",
              kind: str = "counts file") -> dict[str, Any]:
    """A YAML file as plain Python values, with OpenCV's YAML 1.0 reader (no code runs from it);
    `expected` says what the top level must be, `kind` what the file is (both for errors)."""
    if not path.is_file():
        raise FileNotFoundError(f"{kind} not found: {path}")
    text = "\n".join(without_comment(line) for line in path.read_text(encoding="utf-8").splitlines())
    if not text.lstrip().startswith("%YAML"):
        text = "%YAML:1.0\n" + text  # OpenCV wants the directive; lines shift by one in its errors
    try:
        storage = cv2.FileStorage(text, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY | cv2.FILE_STORAGE_FORMAT_YAML)
    except (cv2.error, SystemError) as err:
        cause = err.__cause__ or err
        raise ValueError(f"{path}: not valid YAML ({str(cause).strip().splitlines()[-1]})") from None
    root = storage.root()
    if root.empty() or not root.isMap():
        raise ValueError(f"{path}: expected {expected}")
    return _node_value(root)


def without_comment(line: str) -> str:
    """`line` without its `# comment`: OpenCV keeps a comment that follows a plain value as part of
    the value (`fps: 5  # at most` reads as the text "5  # at most"). A `#` inside quotes, or not
    after a space, is text."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line


def _node_value(node) -> Any:
    if node.isMap():
        return {key: _node_value(node.getNode(key)) for key in node.keys()}  # noqa: SIM118 (a cv2.FileNode, not a dict)
    if node.isSeq():
        return [_node_value(node.at(i)) for i in range(node.size())]
    if node.isInt():
        return int(node.real())
    if node.isReal():
        return node.real()
    if node.isString():
        return node.string()
    return None


def load_regions(paths: Sequence[str | os.PathLike], names: Sequence[str] = ()) -> list[Region]:
    """The lines and zones of the counts files `paths`; `names` are the model's classes."""
    regions: dict[str, Region] = {}
    for path in dict.fromkeys(Path(p) for p in paths):  # one file named by lines= and zones= is read once
        content = read_yaml(path)
        unknown = set(content) - {"lines", "zones"}
        if unknown:
            raise ValueError(f"{path}: unknown section '{sorted(unknown)[0]}'; use 'lines:' and 'zones:'")
        for section, kind in (("lines", "line"), ("zones", "zone")):
            entries = content.get(section) or []
            if not isinstance(entries, list):
                raise ValueError(f"{path}: '{section}' must be a list of entries (- name: …, points: …)")
            for i, entry in enumerate(entries):
                region = parse_entry(entry, kind, f"{path}: {section}[{i}]", names)
                if region.name in regions:
                    raise ValueError(f"{path}: {section}[{i}]: the name '{region.name}' is used twice")
                regions[region.name] = region
    return list(regions.values())


def parse_entry(entry: Any, kind: str, where: str, names: Sequence[str]) -> Region:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with name and points")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: needs a name")
    where = f"{where} ({name})"
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(ENTRY_KEYS))}")
    points = entry.get("points")
    want = "2 points [[x, y], [x, y]]" if kind == "line" else "3 or more points [[x, y], ...]"
    try:
        points = np.array(points, dtype=np.float64)
    except (TypeError, ValueError):
        points = np.zeros(0)
    if points.ndim != 2 or points.shape[1] != 2 or not (points.shape[0] == 2 if kind == "line" else points.shape[0] >= 3):
        raise ValueError(f"{where}: points must be {want}, got {entry.get('points')!r}")
    band = entry.get("band", DEFAULT_BAND)
    if not isinstance(band, (int, float)) or band < 0:
        raise ValueError(f"{where}: band must be a number of pixels >= 0, got {band!r}")
    dwell = entry.get("dwell")
    if dwell is not None and (kind != "zone" or not isinstance(dwell, (int, float)) or dwell <= 0):
        raise ValueError(f"{where}: dwell is a zone's limit in seconds > 0, got {dwell!r}"
                         + ("" if kind == "zone" else " on a line"))
    classes = entry.get("classes")
    if classes is not None:
        from edgecnn.runtime.detector import class_ids

        try:
            classes = class_ids(classes if isinstance(classes, list) else [classes], list(names))
        except ConfigError as err:
            raise ValueError(f"{where}: {err}") from None
    return Region(name, kind, points, classes, float(band), None if dwell is None else float(dwell))
