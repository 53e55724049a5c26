"""What camera-motion compensation buys: the tracker with and without it on synthetic videos filmed
by a panning, shaking camera (and by the fixed one, where it should cost nothing in accuracy).

    PYTHONPATH=. python benchmarks/camera_motion.py [seed=3] [sequences=4] [frames=240] [motion=0.1]
        [drop=0.1] [jitter=0.03] [model=<detector .tflite/.onnx>]

Detections are the visible ground truth with `drop` of it left out and the rest jittered by
`jitter` of its size (as in reid_vs_motion.py: the detector apart), or, with model=, our own
detector at its operating point. The tracker runs with its defaults (thresholds from the model's
operating point when there is one). Prints IDF1 / MOTA / ID switches per camera and setting, and
the CPU time per frame of the motion estimate and of the tracker, each apart.
Writes runs/benchmarks/camera_motion.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

OUT = Path("runs/benchmarks")
OPTIONS = {"seed": 3, "sequences": 4, "frames": 240, "motion": 0.1, "drop": 0.1, "jitter": 0.03, "model": None}


def noisy_detections(gt: np.ndarray, frame: int, drop: float, jitter: float, rng) -> tuple:
    from edgecnn.runtime.boxes import tlwh_to_xyxy

    rows = gt[(gt[:, 0] == frame) & (gt[:, 6] > 0)]
    rows = rows[rng.random(len(rows)) >= drop].copy()
    rows[:, 2:6] += rng.normal(0, jitter, (len(rows), 4)) * rows[:, [4, 5, 4, 5]]
    return tlwh_to_xyxy(rows[:, 2:6]), np.full(len(rows), 0.9), (rows[:, 7] - 1).astype(int)


def track(seq: Path, gt: np.ndarray, options: dict, cmc: bool, detector, cfg: dict) -> dict:
    from edgecnn.data.crops import iter_frames
    from edgecnn.metrics.mot import score_sequence
    from edgecnn.runtime.mot import result_rows, stack_rows
    from edgecnn.runtime.tracker import Detections, Tracker
    from edgecnn.runtime.tracker.camera_motion import CameraMotion

    rng = np.random.default_rng(0)  # the same detections with and without compensation
    tracker, camera = Tracker.from_config(cfg), CameraMotion()
    rows, cmc_s, track_s, frames = [], 0.0, 0.0, 0
    for frame, image in iter_frames(seq):
        if detector is None:
            boxes, scores, classes = noisy_detections(gt, frame, options["drop"], options["jitter"], rng)
        else:
            d = detector.detect(image)
            boxes, scores, classes = d.xyxy, d.scores, d.classes
        warp = None
        if cmc:
            start = time.process_time()
            warp = camera.estimate(image, boxes)
            cmc_s += time.process_time() - start
        start = time.process_time()
        out = tracker.update(Detections.of(boxes, scores, classes), warp=warp)
        track_s += time.process_time() - start
        frames += 1
        rows.append(result_rows(frame, out))
    counts = score_sequence(gt[gt[:, 6] > 0], stack_rows(rows))
    return {"counts": counts, "cmc_ms": 1000 * cmc_s / frames, "tracker_ms": 1000 * track_s / frames}


def main() -> None:
    from edgecnn.config import parse_overrides
    from edgecnn.data.synth import synth_video
    from edgecnn.fileio import atomic_write_json
    from edgecnn.metrics.mot import MOTCounts
    from edgecnn.runtime.mot import read_mot
    from edgecnn.runtime.tracker import TRACKER_KEYS
    from edgecnn.runtime.tracker.defaults import detector_dependent, resolve

    args = parse_overrides(sys.argv[1:])
    options = {k: args.pop(k, v) for k, v in OPTIONS.items()}
    detector, meta = None, None  # no detector: ground-truth boxes, thresholds of public detections
    if options["model"]:
        from edgecnn.runtime.backends import load_backend
        from edgecnn.runtime.detector import Detector

        backend = load_backend(options["model"], threads=2)
        meta = backend.meta
    cfg = resolve({**detector_dependent().defaults(), "conf": None, **args}, meta)
    if options["model"]:
        detector = Detector(backend, conf=cfg["conf"], iou=0.45, max_det=100)
    study = {"options": options, "tracker": {k: cfg[k] for k in TRACKER_KEYS.keys}, "cameras": {}}
    for camera, motion in (("moving", options["motion"]), ("fixed", 0.0)):
        root = OUT / "data" / f"camera-{camera}-seed{options['seed']}"
        info = synth_video(root, sequences=options["sequences"], frames=options["frames"], seed=options["seed"],
                           camera_motion=motion)
        for cmc in (False, True):
            total, cmc_ms, track_ms = MOTCounts(), [], []
            for record in info["sequences"]:
                seq = root / record["dir"]
                result = track(seq, read_mot(seq / "gt" / "gt.txt"), options, cmc, detector, cfg)
                total = total + result["counts"]
                cmc_ms.append(result["cmc_ms"])
                track_ms.append(result["tracker_ms"])
            m = total.metrics()
            name = f"{camera} camera, {'with' if cmc else 'without'} CMC"
            study["cameras"][name] = {**m, "cmc_cpu_ms_per_frame": float(np.mean(cmc_ms)),
                                      "tracker_cpu_ms_per_frame": float(np.mean(track_ms))}
            print(f"{name:<32} IDF1 {100 * m['IDF1']:5.1f}  MOTA {100 * m['MOTA']:5.1f}  IDs {m['IDs']:4d}  "
                  f"CMC {np.mean(cmc_ms):6.2f} ms/frame  tracker {np.mean(track_ms):5.2f} ms/frame (CPU)")
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"wrote {atomic_write_json(OUT / 'camera_motion.json', study)}")


if __name__ == "__main__":
    main()
