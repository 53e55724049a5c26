"""Tracking on precomputed detections (a MOTChallenge det.txt), as deep_sort's app does.

The detector's work is already done, so this measures and exercises the tracker alone: motion
and IoU only, or with appearance when a ReID model and the sequence's images are given.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config import ConfigError
from edgecnn.runtime.mot import read_mot, write_mot
from edgecnn.runtime.tracker import TRACKER_KEYS, Tracker


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


def track_detections(detections: str | os.PathLike, out: str | os.PathLike, images: str | os.PathLike | None = None,
                     reid: str | os.PathLike | None = None, min_confidence: float = 0.0,
                     **tracker_cfg: Any) -> dict[str, Any]:
    """Track every frame of `detections`, write MOT results to `out`, return counts and timings.

    `tracker_cfg` takes TRACKER_KEYS; detections below `min_confidence` are dropped first.
    """
    cfg = TRACKER_KEYS.resolve(tracker_cfg, "track_detections")
    if reid is not None and images is None:
        raise ConfigError("track_detections: reid needs images= (the sequence's img1 folder) to crop people from")
    dets = read_mot(detections, min_confidence=min_confidence)
    frame_paths = _frame_images(images) if images is not None else {}
    encoder = _reid_encoder(reid) if reid is not None else None
    last_frame = int(max([dets[:, 0].max() if len(dets) else 0, *frame_paths.keys(), 0]))
    order = np.argsort(dets[:, 0], kind="stable")
    dets = dets[order]
    bounds = np.searchsorted(dets[:, 0], np.arange(1, last_frame + 2))
    tracker = Tracker(**cfg)
    results, track_s, track_cpu_s, reid_s = [], 0.0, 0.0, 0.0
    for frame in range(1, last_frame + 1):
        rows = dets[bounds[frame - 1] : bounds[frame]]
        boxes = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)
        features = None
        if encoder is not None:
            start = time.perf_counter()
            features = encoder.encode(_read_frame(frame_paths, frame), boxes)
            reid_s += time.perf_counter() - start
        start, start_cpu = time.perf_counter(), time.process_time()
        tracked = tracker.update(boxes, rows[:, 6], features)
        track_s += time.perf_counter() - start
        track_cpu_s += time.process_time() - start_cpu
        if len(tracked):
            wh = tracked[:, 2:4] - tracked[:, 0:2]
            results.append(np.column_stack([np.full(len(tracked), frame), tracked[:, 4], tracked[:, 0:2], wh,
                                            tracked[:, 5], -np.ones((len(tracked), 3))]))
    results = np.concatenate(results) if results else np.empty((0, 10))
    write_mot(out, results)
    frames = max(last_frame, 1)
    # CPU time next to wall time: on a shared machine it is the steadier figure.
    metrics = {"frames": last_frame, "detections": len(dets), "tracks": int(len(np.unique(results[:, 1]))),
               "tracker_ms_per_frame": 1000 * track_s / frames,
               "tracker_cpu_ms_per_frame": 1000 * track_cpu_s / frames}
    if encoder is not None:
        metrics["reid_ms_per_frame"] = 1000 * reid_s / frames
    return {**metrics, "artifacts": {"results": str(out)}}


def _read_frame(frame_paths: dict[int, Path], frame: int) -> np.ndarray:
    import cv2

    path = frame_paths.get(frame)
    image = cv2.imread(str(path)) if path is not None else None
    if image is None:
        raise FileNotFoundError(f"frame {frame}: image missing or unreadable: {path}")
    return image
