"""Events: what happened to a camera's tracks, as records a consumer can act on and deduplicate.

An `Event` is one thing that happened on one camera at one frame: a track appeared or was lost,
entered or left a zone, crossed a line (`direction` in or out, as `counting` defines them), stayed
in a zone past the zone's `dwell` limit, or the camera itself went down or came back.
`EventBuilder` turns each frame's tracks and its `counting.Counter` events into Events;
`camera_event` makes the camera's own. Sinks (`EventSink`) send them on.

Every event has a stable `id`: a short hash of camera, kind, track, region and frame index, so a
consumer drops duplicates (delivery is at-least-once) and replaying the same video gives the same
ids. The frame index restarts with the process, so ids are unique within one run of a camera.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from edgecnn.runtime.counting import Counter
    from edgecnn.runtime.tracker import Tracks

KINDS = ("appeared", "lost", "zone_enter", "zone_leave", "line_cross", "dwell", "camera_down", "camera_up")


@dataclass(frozen=True)
class Event:
    """One event; `to_json()` is what every sink sends (README: "Events" has the table)."""

    camera: str  # the camera's name
    kind: str  # one of KINDS
    epoch: float  # Unix time of the frame's capture (for `lost`: when the track was last seen)
    frame: int  # the source's frame index (for `lost`: the frame it was last seen in)
    track: int | None = None  # track id (None for camera_down / camera_up)
    class_id: int | None = None
    class_name: str | None = None
    region: str | None = None  # line or zone name (line_cross, zone_*, dwell)
    direction: str | None = None  # line_cross: "in" or "out"
    dwell_s: float | None = None  # zone_leave: seconds the visit lasted; dwell: seconds inside so far
    clip: str | None = None  # the clip recorded around it, relative to the clips directory
    snapshot: str | None = None  # its JPEG snapshot, relative to the clips directory
    id: str = field(default="", compare=False)  # filled in from the fields above

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"event kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.id:
            object.__setattr__(self, "id", event_id(self.camera, self.kind, self.track, self.region, self.frame))

    @property
    def time(self) -> str:
        """The capture time as ISO 8601 UTC with milliseconds."""
        stamp = dt.datetime.fromtimestamp(self.epoch, dt.timezone.utc)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def as_dict(self) -> dict[str, Any]:
        """The record without empty fields, `time` (ISO) next to `epoch`."""
        record = {k: v for k, v in asdict(self).items() if v is not None}
        record["epoch"] = round(self.epoch, 3)
        record["time"] = self.time
        return record

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Event":
        """The event `as_dict` wrote (e.g. read back from the on-disk queue)."""
        fields = {k: v for k, v in record.items() if k != "time"}
        return cls(**fields)


def event_id(camera: str, kind: str, track: int | None, region: str | None, frame: int) -> str:
    """16 hex digits, the same for the same event in a replay."""
    key = f"{camera}\x1f{kind}\x1f{'' if track is None else track}\x1f{region or ''}\x1f{frame}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class EventSink(Protocol):
    """Where events go. `publish` must not block on the network: sinks that send queue first."""

    def publish(self, event: Event) -> None: ...

    def publish_counts(self, camera: str, counts: dict[str, Any], epoch: float) -> None:
        """The camera's `Counter.report()` now (sinks without a use for counts ignore it)."""

    def close(self) -> None: ...


def camera_event(camera: str, up: bool, frame: int, epoch: float, change: int = 0) -> Event:
    """camera_up / camera_down; `frame` is the last frame index read before the change, `change`
    counts the camera's changes (in its id: a camera may drop twice before its next frame)."""
    kind = "camera_up" if up else "camera_down"
    return Event(camera, kind, epoch, frame, id=event_id(camera, kind, None, f"change {change}", frame))


@dataclass(frozen=True)
class Sighting:
    count: int  # EventBuilder.frames when seen
    frame: int
    epoch: float
    now: float  # the counter's clock (video time for files)
    cls: int


class EventBuilder:
    """One camera's events, frame by frame, from its confirmed tracks and its counter.

    A track is lost once unseen for more than `max_age` frames (the tracker's key, as the counter
    uses): the tracker has deleted it and its id never returns. A lost track leaves the zones it is
    in (the counter has it leave at its last sighting too). `dwell` fires once per zone visit, when
    the visit passes that zone's `dwell` limit (counts file key, seconds).

    Its state is per live track (where last seen, which zones it is in, which visit's dwell was
    reported), dropped when the track is lost or leaves the zone: bounded by the tracks present.
    """

    def __init__(self, camera: str, names: Sequence[str] = (), max_age: int = 30):
        self.camera, self.names, self.max_age = camera, list(names), max_age
        self.frames = 0  # frames processed (live sources skip indices; the tracker counts these)
        self.seen: dict[int, Sighting] = {}  # track → where it was last seen
        self.inside: dict[int, dict[str, float]] = {}  # track → {zone: counter time it entered}
        self.dwelled: dict[tuple[int, str], float] = {}  # (track, zone) → entry time of the visit reported

    def update(self, frame: int, epoch: float, tracks: Tracks, counter: Counter | None = None) -> list[Event]:
        """This frame's events; call after `counter.update` for the same frame (its `events`)."""
        self.frames += 1
        now = counter.now if counter is not None else epoch
        ids, classes = np.asarray(tracks.ids, int).tolist(), np.asarray(tracks.classes, int).tolist()
        events = [self._event("appeared", frame, epoch, tid, cls) for tid, cls in zip(ids, classes)
                  if tid not in self.seen]
        for tid, cls in zip(ids, classes):
            self.seen[tid] = Sighting(self.frames, frame, epoch, now, cls)
        if counter is not None:
            events += self._counted(frame, epoch, counter)
        for tid, last in sorted(self.seen.items()):
            if self.frames - last.count > self.max_age:
                events += self._lost(tid, last)
        return events

    def _lost(self, tid: int, last: Sighting) -> list[Event]:
        del self.seen[tid]
        events = [self._event("zone_leave", last.frame, last.epoch, tid, last.cls, region=zone,
                              dwell_s=round(last.now - entered, 2))
                  for zone, entered in self.inside.pop(tid, {}).items()]
        for zone in {zone for t, zone in self.dwelled if t == tid}:
            del self.dwelled[tid, zone]
        return events + [self._event("lost", last.frame, last.epoch, tid, last.cls)]

    def _counted(self, frame: int, epoch: float, counter: Counter) -> list[Event]:
        events = []
        for item in counter.events:
            tid = item["id"]
            cls = self.seen[tid].cls
            if "line" in item:
                events.append(self._event("line_cross", frame, epoch, tid, cls, region=item["line"],
                                          direction=item["direction"]))
            elif item["event"] == "enter":
                self.inside.setdefault(tid, {})[item["zone"]] = counter.now
                events.append(self._event("zone_enter", frame, epoch, tid, cls, region=item["zone"]))
            else:
                entered = self.inside.get(tid, {}).pop(item["zone"], counter.now)
                self.dwelled.pop((tid, item["zone"]), None)
                events.append(self._event("zone_leave", frame, epoch, tid, cls, region=item["zone"],
                                          dwell_s=round(counter.now - entered, 2)))
        for zone in counter.zones:
            limit = zone.region.dwell
            for tid, entered in zone.entered.items() if limit else ():
                key = (tid, zone.region.name)
                if counter.now - entered > limit and self.dwelled.get(key) != entered and tid in self.seen:
                    self.dwelled[key] = entered
                    events.append(self._event("dwell", frame, epoch, tid, self.seen[tid].cls, region=key[1],
                                              dwell_s=round(counter.now - entered, 2)))
        return events

    def _event(self, kind: str, frame: int, epoch: float, tid: int, cls: int, **extra: Any) -> Event:
        name = self.names[cls] if 0 <= cls < len(self.names) else None
        return Event(self.camera, kind, epoch, frame, track=tid, class_id=cls if cls >= 0 else None,
                     class_name=name, **extra)
