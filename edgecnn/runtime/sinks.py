"""Where tracking results go: a window, an annotated video, MOTChallenge text, JSON lines.

Every sink has `write(frame, tracks, annotated)` (a frame's `tracker.Tracks`, and the frame drawn
by `Annotator` when a sink `annotates`) and `close(error=None)`. Files appear only when complete:
the video is written to a temporary file that replaces the target at close, MOT results are
written at close; JSON lines stream (one flushed line per frame, so a consumer can follow).
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

import cv2
import numpy as np

from edgecnn.fileio import atomic_path
from edgecnn.runtime.counting import Counter
from edgecnn.runtime.mot import result_rows, stack_rows, write_mot
from edgecnn.runtime.sources import Frame
from edgecnn.runtime.tracker import Tracks

CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
TRAIL_LENGTH = 30


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR color per track ID (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


@dataclass
class Annotator:
    """Draws boxes, IDs with class names, motion trails, FPS and latency on a copy of the frame;
    with a `counting.Counter`, its lines and zones with their counts too."""

    names: Sequence[str] = ()
    trails: dict[int, deque] = field(default_factory=dict)
    counter: Counter | None = None

    def draw(self, image: np.ndarray, tracks: Tracks, fps: float | None, latency_ms: float | None = None) -> np.ndarray:
        out = image.copy()
        if self.counter is not None:
            self._draw_counts(out)
        seen = set()
        for box, tid, score, cls in zip(tracks.boxes, tracks.ids, tracks.scores, tracks.classes):
            tid = int(tid)
            seen.add(tid)
            color = track_color(tid)
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
            name = self.names[int(cls)] if 0 <= int(cls) < len(self.names) else str(int(cls))
            self._label(out, f"{tid} {name} {score:.2f}", (x1, y1), color)
            trail = self.trails.setdefault(tid, deque(maxlen=TRAIL_LENGTH))
            trail.append(((x1 + x2) // 2, y2))
            if len(trail) > 1:
                cv2.polylines(out, [np.array(trail, np.int32)], False, color, 2)
        for tid in set(self.trails) - seen:  # trails of lost tracks fade out one point per frame
            self.trails[tid].popleft()
            if not self.trails[tid]:
                del self.trails[tid]
        if fps is not None:
            latency = f"  {latency_ms:.0f} ms" if latency_ms is not None else ""
            self._label(out, f"{fps:.1f} FPS{latency}  {len(tracks)} tracks", (4, 24), (40, 40, 40))
        return out

    def _draw_counts(self, image: np.ndarray) -> None:
        report = self.counter.report()
        for region in self.counter.regions:
            if region.pixels is None:
                continue  # not fitted to a frame yet
            points = np.round(region.pixels).astype(np.int32)
            if region.kind == "line":
                cv2.line(image, tuple(points[0]), tuple(points[1]), (0, 255, 255), 2, cv2.LINE_AA)
                counts = report["lines"][region.name]
                text = f"{region.name}: in {counts['in']} out {counts['out']}"
            else:
                cv2.polylines(image, [points], True, (255, 200, 0), 2, cv2.LINE_AA)
                text = f"{region.name}: {report['zones'][region.name]['occupancy']} now"
            x, y = points.mean(axis=0)  # clear of the FPS label in the corner
            self._label(image, text, (int(x), int(y)), (60, 60, 60))

    @staticmethod
    def _label(image: np.ndarray, text: str, corner: tuple[int, int], color: tuple[int, int, int]) -> None:
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        x, y = corner
        y = max(y, h + base + 2)
        cv2.rectangle(image, (x, y - h - base - 2), (x + w + 2, y), color, -1)
        cv2.putText(image, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


class Sink:
    def write(self, frame: Frame, tracks: Tracks, annotated: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self, error: BaseException | None = None) -> None:
        """Finish the output; after an `error`, files written at close keep their previous version."""

    annotates = False  # True when the sink wants the annotated image


def display_available() -> bool:
    """A window can open: a display server is set (Linux) and OpenCV has its GUI module."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return "highgui" in cv2.getBuildInformation().lower() and _gui_works()


def _gui_works() -> bool:
    try:
        cv2.namedWindow("edgecnn-probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("edgecnn-probe")
        return True
    except cv2.error:
        return False


class WindowSink(Sink):
    """An OpenCV window; closing it or pressing q or Esc stops the app (`stopped`)."""

    annotates = True

    def __init__(self, title: str = "edgecnn"):
        if not display_available():
            raise RuntimeError(
                "show=true needs a display and an OpenCV with GUI support (opencv-python, not -headless); "
                "use save=out.mp4 instead"
            )
        self.title = title
        self.stopped = False
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def write(self, frame: Frame, tracks: Tracks, annotated: np.ndarray | None) -> None:
        cv2.imshow(self.title, annotated)
        key = cv2.waitKey(1) & 0xFF
        self.stopped = key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1

    def close(self, error: BaseException | None = None) -> None:
        cv2.destroyWindow(self.title)


class VideoSink(Sink):
    """An annotated video; the file appears at `path` only once `close()` succeeds."""

    annotates = True

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in CODECS:
            raise ValueError(f"save={self.path}: unsupported video extension; use one of {', '.join(CODECS)}")
        self.fps = fps
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path, suffix=self.path.suffix))
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: Frame, tracks: Tracks, annotated: np.ndarray | None) -> None:
        if self._writer is None:
            h, w = annotated.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.CAP_FFMPEG, fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"save={self.path}: OpenCV cannot write this video format here")
        self._writer.write(annotated)
        self.frames += 1

    def close(self, error: BaseException | None = None) -> None:
        if self._writer is not None:
            self._writer.release()
        if error is None and self.frames:
            self._stack.close()  # replaces the target with the finished file
        else:
            self._stack.__exit__(type(error or RuntimeError), error or RuntimeError("no frames"), None)


class MotSink(Sink):
    """MOTChallenge results (`frame,id,left,top,width,height,conf,-1,-1,-1`, frames from 1)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._rows: list[np.ndarray] = []
        self._frame = 0

    def write(self, frame: Frame, tracks: Tracks, annotated: np.ndarray | None) -> None:
        self._frame += 1  # processed frames, so results line up with the frames a reader sees
        if len(tracks):
            self._rows.append(result_rows(self._frame, tracks))

    def close(self, error: BaseException | None = None) -> None:
        write_mot(self.path, stack_rows(self._rows))


class JsonlSink(Sink):
    """One JSON object per frame: source frame index, capture time (Unix seconds), tracks; `-` is stdout.
    With a `counting.Counter`: `counts` (its report after this frame) and `events` (crossings, zone
    entries and exits in this frame)."""

    def __init__(self, path: str | os.PathLike, names: Sequence[str] = (), counter: Counter | None = None):
        self.path = str(path)
        self.names = list(names)
        self.counter = counter
        if self.path == "-":
            self._file: IO[str] = sys.stdout
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (open for the sink's life; close() closes it)

    def write(self, frame: Frame, tracks: Tracks, annotated: np.ndarray | None) -> None:
        objects = []
        for box, tid, score, cls in zip(tracks.boxes, tracks.ids, tracks.scores, tracks.classes):
            item = {"id": int(tid), "box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
                    "class": int(cls)}
            if 0 <= int(cls) < len(self.names):
                item["name"] = self.names[int(cls)]
            objects.append(item)
        record = {"frame": frame.index, "time": round(frame.captured_at, 3), "tracks": objects}
        if self.counter is not None:
            record.update(counts=self.counter.report(), events=self.counter.events)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self, error: BaseException | None = None) -> None:
        if self._file is not sys.stdout:
            self._file.close()


class SegmentJsonlSink(JsonlSink):
    """The segmentation app's JSON lines: per frame, each class's share of the frame (`areas`, summing
    to 1) and, per zone, each class's share of the zone (`zones`)."""

    def write(self, frame: Frame, result, annotated: np.ndarray | None) -> None:
        record = {"frame": frame.index, "time": round(frame.captured_at, 3), "areas": result.areas, "zones": result.zones}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
