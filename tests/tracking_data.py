"""Synthetic ground truth and tracker input for the tracker, offline refinement and MOT metric tests."""

from __future__ import annotations

import numpy as np


def walk(start, velocity, frames, size=(40, 100)):
    """xyxy boxes of a person moving at constant velocity."""
    xy = np.asarray(start, float) + np.outer(np.arange(frames), velocity)
    return np.concatenate([xy, xy + size], axis=1)


def synthetic_scene(seed=0, frames=120, people=8):
    """Ground truth of people crossing a 960x540 view, and noisy detections: 10% missed,
    jittered boxes, spurious one-frame boxes and weak duplicates."""
    rng = np.random.default_rng(seed)
    gt, det = [], []
    start = rng.uniform([0, 100], [800, 380], (people, 2))
    velocity = rng.uniform(-5, 5, (people, 2)) * [1, 0.3]
    size = rng.uniform([30, 80], [60, 160], (people, 2))
    for f in range(1, frames + 1):
        for p in range(people):
            x, y = start[p] + velocity[p] * f
            w, h = size[p]
            if not (0 <= x <= 960 - w):
                continue
            gt.append([f, p + 1, x, y, w, h, 1, -1, -1, -1])
            if rng.random() < 0.1:
                continue
            jitter = rng.normal(0, 0.03, 4) * [w, h, w, h]
            box = [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]]
            det.append([f, -1, *box, rng.uniform(0.6, 1), -1, -1, -1])
        if rng.random() < 0.3:
            det.append([f, -1, *rng.uniform([0, 0], [900, 400]), 40, 100, rng.uniform(0.5, 0.8), -1, -1, -1])
    return np.array(gt), np.array(det)


def synthetic_sequence(seed: int, frames: int = 60, objects: int = 6):
    """Ground truth of people walking, and a tracker's output with noise, misses, false alarms,
    swapped and broken identities: every event the metrics count."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [400, 200], (objects, 2))
    velocity = rng.uniform(-4, 4, (objects, 2))
    size = rng.uniform([30, 60], [60, 140], (objects, 2))
    gt, hyp = [], []
    for f in range(1, frames + 1):
        for o in range(objects):
            if rng.random() < 0.1:  # object not annotated this frame
                continue
            xy = start[o] + velocity[o] * f
            gt.append([f, o + 1, *xy, *size[o], 1, -1, -1, -1])
            if rng.random() < 0.15:  # missed
                continue
            hid = o + 1 + (100 if f > frames // 2 and o % 3 == 0 else 0)  # broken identity
            if o == 1 and 20 <= f < 30:
                hid = 3  # identity swap between objects 1 and 2 (ids 2 and 3)
            elif o == 2 and 20 <= f < 30:
                hid = 2
            noise = rng.normal(0, 4, 4) * (3 if rng.random() < 0.1 else 1)
            hyp.append([f, hid, *(xy + noise[:2]), *(size[o] + noise[2:]), -1, -1, -1, -1])
        for k in range(rng.poisson(0.7)):  # false alarms
            hyp.append([f, 500 + f * 10 + k, *rng.uniform(0, 500, 2), 40, 90, -1, -1, -1, -1])
    hyp.append([frames + 2, 999, 10, 10, 40, 90, -1, -1, -1, -1])  # a frame that only results have
    return np.array(gt, float), np.array(hyp, float)
