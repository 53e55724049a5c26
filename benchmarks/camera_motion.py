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

from common import OUT, noisy_detections

OPTIONS = {"seed": 3, "sequences": 4, "frames": 240, "motion": 0.1, "drop": 0.1, "jitter": 0.03, "model": None}


def track(seq: Path, gt: np.ndarray, options: dict, cmc: bool, detector, cfg: dict) -> dict:
    from edgecnn.data.crops import iter_frames
    from edgecnn.metrics.mot import score_sequence
    from edgecnn.runtime.boxes import tlwh_to_xyxy
    from edgecnn.runtime.mot import stack_rows
    from edgecnn.runtime.offline import Seconds, track_frames
    from edgecnn.runtime.tracker import Detections, Tracker
    from edgecnn.runtime.tracker.camera_motion import CameraMotion

    rng = np.random.default_rng(0)  # the same detections with and without compensation
    tracker, camera = Tracker.from_config(cfg), CameraMotion()
    cmc_time, tracker_time, frames = Seconds(), Seconds(), 0

    def frames_with_motion():
        nonlocal frames
        for frame, image in iter_frames(seq):
            if detector is None:
                visible = gt[(gt[:, 0] == frame) & (gt[:, 6] > 0)]
                rows = noisy_detections(visible, options["drop"], options["jitter"], rng)
                detections = Detections.of(tlwh_to_xyxy(rows[:, 2:6]), np.full(len(rows), 0.9), rows[:, 7] - 1)
            else:
                detections = detector.detect(image)
            warp = None
            if cmc:
                start = time.process_time()
                warp = camera.estimate(image, detections.xyxy)
                cmc_time.cpu_s += time.process_time() - start
            frames += 1
            yield frame, detections, None, warp

    rows = [r for _, r in track_frames(tracker, frames_with_motion(), tracker_time)]
    counts = score_sequence(gt[gt[:, 6] > 0], stack_rows(rows))
    return {"counts": counts, "cmc_ms": 1000 * cmc_time.cpu_s / frames, "tracker_ms": 1000 * tracker_time.cpu_s / frames}


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
