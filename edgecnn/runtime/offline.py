"""Tracking on precomputed detections (a MOTChallenge det.txt), as deep_sort's app does.

The detector's work is already done, so this measures and exercises the tracker alone: motion
and IoU only, or with appearance when a ReID model and the sequence's images are given.

By default the results are what the camera app would output, frame by frame. Because a det.txt
is the whole sequence, REFINE_KEYS may also refine the tracks after the run, as ByteTrack and
StrongSORT++ do for their MOTChallenge figures: `backfill` adds the frames a track spent
tentative before it was confirmed, `interpolate` fills short gaps inside a track. Neither is
possible online; figures with them on are offline figures.

`replay_events` is the offline reference for events: the tracks of a run's JSON lines through a
fresh counter and `events.EventBuilder`, which the events the run sent must equal.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np

from edgecnn.config import ConfigError, Key, Schema
from edgecnn.runtime.boxes import tlwh_to_xyxy
from edgecnn.runtime.counting import Counter, Region
from edgecnn.runtime.events import Event, EventBuilder
from edgecnn.runtime.mot import COLUMNS, read_mot, result_rows, stack_rows, write_mot
from edgecnn.runtime.tracker import TRACKER_KEYS, Detections, Tracker, Tracks

# One frame for the tracker: (frame number, detections, (N, D) embeddings or None, 2x3 camera warp or None).
Frame = Tuple[int, Detections, Optional[np.ndarray], Optional[np.ndarray]]
REFINE_KEYS = Schema(
    Key("backfill", False, "offline (detections= only): also output the frames in which a track that was later "
                           "confirmed was still tentative (the online tracker hides its first n_init - 1 hits)"),
    Key("interpolate", 0, "offline (detections= only): fill gaps of at most this many missing frames inside a "
                          "track by linear interpolation of its box (0: off)", type=int, min=0),
)


def _frame_images(images: str | os.PathLike) -> dict[int, Path]:
    """{frame number: path} for a MOT `img1` folder of `000001.jpg`-style files."""
    folder = Path(images)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    found = {int(p.stem): p for p in folder.iterdir()
             if p.stem.isdigit() and p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    if not found:
        raise FileNotFoundError(f"no numbered images (000001.jpg ...) in {folder}")
    return found


def _reid_encoder(reid: str | os.PathLike):
    # Imported here: the backends pull in an interpreter, which motion-only tracking never needs.
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.reid import ReidEncoder

    return ReidEncoder(load_backend(reid))


@dataclass
class Seconds:
    """Seconds spent in a stage, wall and CPU (on a shared machine CPU time is the steadier figure)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


def track_frames(tracker: Tracker, frames: Iterable[Frame], time_spent: Seconds | None = None,
                 ) -> Iterator[tuple[int, np.ndarray]]:
    """Feed `frames` to `tracker` in order; yield each frame's number and MOT result rows (n, 10).

    A frame is (frame number, `Detections`, (N, D) embeddings or None, the camera's 2x3 warp or
    None). `time_spent`, if given, adds up the time spent in `tracker.update` alone.
    """
    for frame, detections, features, warp in frames:
        start, start_cpu = time.perf_counter(), time.process_time()
        tracks = tracker.update(detections, features=features, warp=warp)
        if time_spent is not None:
            time_spent.wall_s += time.perf_counter() - start
            time_spent.cpu_s += time.process_time() - start_cpu
        yield frame, result_rows(frame, tracks)


def track_detections(detections: str | os.PathLike, out: str | os.PathLike, images: str | os.PathLike | None = None,
                     reid: str | os.PathLike | None = None, min_confidence: float = 0.0,
                     **options: Any) -> dict[str, Any]:
    """Track every frame of `detections`, write MOT results to `out`, return counts and timings.

    `options` take TRACKER_KEYS and REFINE_KEYS; detections below `min_confidence` are dropped
    first. With REFINE_KEYS at their defaults the results are the online tracker's, row for row.
    """
    cfg = Schema(TRACKER_KEYS, REFINE_KEYS).resolve(options, "track_detections")
    if reid is not None and images is None:
        raise ConfigError("track_detections: reid needs images= (the sequence's img1 folder) to crop people from")
    dets = read_mot(detections, min_confidence=min_confidence)
    frame_paths = _frame_images(images) if images is not None else {}
    encoder = _reid_encoder(reid) if reid is not None else None
    last_frame = int(max([dets[:, 0].max() if len(dets) else 0, *frame_paths.keys(), 0]))
    reid_time, tracker_time = Seconds(), Seconds()
    frames = _det_frames(dets, last_frame, encoder, frame_paths, reid_time)
    tracker = Tracker(**{k: cfg[k] for k in TRACKER_KEYS.keys})
    results, tentative, confirmed_ids = [], [], set()
    for frame, rows in track_frames(tracker, frames, tracker_time):
        results.append(rows)
        if cfg["backfill"]:
            tentative.append(_tentative_rows(tracker, frame))
            confirmed_ids.update(t.track_id for t in tracker.tracks if t.is_confirmed)
    results = stack_rows(results)
    backfilled = _confirmed_later(tentative, confirmed_ids)
    results = np.concatenate([results, backfilled])
    interpolated = interpolate_gaps(results, cfg["interpolate"])
    results = np.concatenate([results, interpolated])
    write_mot(out, results)
    frames = max(last_frame, 1)
    # CPU time next to wall time: on a shared machine it is the steadier figure.
    metrics = {"frames": last_frame, "detections": len(dets), "tracks": int(len(np.unique(results[:, 1]))),
               "rows_backfilled": len(backfilled), "rows_interpolated": len(interpolated),
               "tracker_ms_per_frame": 1000 * tracker_time.wall_s / frames,
               "tracker_cpu_ms_per_frame": 1000 * tracker_time.cpu_s / frames}
    if encoder is not None:
        metrics["reid_ms_per_frame"] = 1000 * reid_time.wall_s / frames
    return {**metrics, "artifacts": {"results": str(out)}}


def _det_frames(dets: np.ndarray, last_frame: int, encoder, frame_paths: dict[int, Path],
                reid_time: Seconds) -> Iterator[Frame]:
    """The frames 1..`last_frame` of MOT det rows, with ReID embeddings when `encoder` is given."""
    dets = dets[np.argsort(dets[:, 0], kind="stable")]
    bounds = np.searchsorted(dets[:, 0], np.arange(1, last_frame + 2))
    for frame in range(1, last_frame + 1):
        rows = dets[bounds[frame - 1] : bounds[frame]]
        detections = Detections.of(tlwh_to_xyxy(rows[:, 2:6]), rows[:, 6])
        features = None
        if encoder is not None:
            start = time.perf_counter()
            features = encoder.encode(_read_frame(frame_paths, frame), detections.xyxy)
            reid_time.wall_s += time.perf_counter() - start
        yield frame, detections, features, None


def _tentative_rows(tracker: Tracker, frame: int) -> np.ndarray:
    """MOT rows of the tentative tracks matched in this frame, as the tracker would output them
    once confirmed (the reported box, if its detection is at least `output_conf`)."""
    return result_rows(frame, Tracks.of([t for t in tracker.tracks
                                         if t.is_tentative and t.time_since_update == 0
                                         and t.score >= tracker.output_conf]))


def _confirmed_later(tentative: list[np.ndarray], confirmed_ids: set[int]) -> np.ndarray:
    """The tentative rows of the tracks that were confirmed at some point; the rest were false alarms."""
    rows = stack_rows(tentative)
    return rows[np.isin(rows[:, 1], list(confirmed_ids))]


def interpolate_gaps(rows: np.ndarray, max_missing: int) -> np.ndarray:
    """New MOT rows that fill every gap of 1 to `max_missing` missing frames inside a track.

    Each filled box lies on the straight line between the track's rows around the gap (left, top,
    width and height move linearly, so the corners do too); its conf is the lower of theirs.
    Written here: no library interpolates MOT rows (ByteTrack's tools/interpolation.py loops).
    """
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 10)
    if max_missing < 1 or len(rows) < 2:
        return stack_rows([])
    rows = rows[np.lexsort((rows[:, 0], rows[:, 1]))]  # by track, then frame
    before, after = rows[:-1], rows[1:]
    missing = (after[:, 0] - before[:, 0] - 1).astype(int)
    gap = (after[:, 1] == before[:, 1]) & (missing >= 1) & (missing <= max_missing)
    before, after, missing = before[gap], after[gap], missing[gap]
    pair = np.repeat(np.arange(len(missing)), missing)  # one entry per filled row
    step = np.arange(len(pair)) - np.repeat(np.cumsum(missing) - missing, missing) + 1
    weight = (step / (missing[pair] + 1))[:, None]
    filled = -np.ones((len(pair), len(COLUMNS)))
    filled[:, 0] = before[pair, 0] + step
    filled[:, 1] = before[pair, 1]
    filled[:, 2:6] = (1 - weight) * before[pair, 2:6] + weight * after[pair, 2:6]
    filled[:, 6] = np.minimum(before[pair, 6], after[pair, 6])
    return filled


def _read_frame(frame_paths: dict[int, Path], frame: int) -> np.ndarray:
    import cv2

    path = frame_paths.get(frame)
    image = cv2.imread(str(path)) if path is not None else None
    if image is None:
        raise FileNotFoundError(f"frame {frame}: image missing or unreadable: {path}")
    return image


def replay_events(jsonl: str | os.PathLike, regions: Sequence[Region], size: tuple[int, int], camera: str = "camera",
                  names: Sequence[str] = (), fps: float | None = None, max_age: int = 30) -> list[Event]:
    """The events that the tracks of a JSON lines file the app wrote (`jsonl=`) give, replayed
    offline through a fresh `Counter` and `EventBuilder`: the reference the live events (MQTT,
    webhook, `events=`) must equal. `size` is the frames' (width, height); `fps` the video's rate
    for video time (files), None for the records' capture times (cameras)."""
    counter = Counter(regions, max_age=max_age) if regions else None
    builder = EventBuilder(camera, names, max_age)
    events = []
    with open(jsonl, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            items = record["tracks"]
            tracks = Tracks(np.array([t["box"] for t in items], np.float64).reshape(-1, 4),
                            np.array([t["id"] for t in items], np.int64), np.array([t["score"] for t in items]),
                            np.array([t["class"] for t in items], np.int64))
            if counter is not None:
                counter.update(tracks, record["frame"] / fps if fps else record["time"], size)
            events += builder.update(record["frame"], record["time"], tracks, counter)
    return events
