"""What appearance adds to association, apart from the detector: DeepSORT with and without a ReID
model on synthetic videos, fed ground-truth boxes as detections (some dropped, all jittered).

    PYTHONPATH=. python benchmarks/reid_vs_motion.py reid=<embedder .onnx/.tflite>
        [seed=2] [sequences=8] [drop=0.1] [jitter=0.03] [key=value ...]

A weak detector leaves nothing ambiguous for appearance to settle (the demo's detector finds a
third of the objects), so this feeds the tracker every visible object instead, drops `drop` of
the boxes at random and jitters the rest by `jitter` of their size, with each object's class.
The videos are synthetic with `seed` 2: the demo's embedder learned its identities from seed 1's.
Tracker key=value overrides apply to both runs. Prints IDF1 / MOTA / ID switches per sequence
and overall for both; writes runs/benchmarks/reid_vs_motion.{json,png}.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from common import OUT, noisy_detections

OPTIONS = {"reid": None, "seed": 2, "sequences": 8, "drop": 0.1, "jitter": 0.03}


def track(seq: Path, det: np.ndarray, encoder, tracker_cfg: dict) -> np.ndarray:
    from edgecnn.runtime.mot import stack_rows
    from edgecnn.runtime.offline import track_frames
    from edgecnn.runtime.tracker import Detections, Tracker

    def frames():
        for frame in range(1, int(det[:, 0].max()) + 1):
            d = det[det[:, 0] == frame]
            boxes = np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1)
            features = None
            if encoder is not None:
                features = encoder.encode(cv2.imread(str(seq / "img1" / f"{frame:06d}.jpg")), boxes)
            yield frame, Detections.of(boxes, np.full(len(d), 0.9), d[:, 7] - 1), features, None  # gt class: class + 1

    return stack_rows([rows for _, rows in track_frames(Tracker.from_config(tracker_cfg), frames())])


def main() -> None:
    from edgecnn.config import parse_overrides
    from edgecnn.data.synth import synth_video
    from edgecnn.fileio import atomic_write_json
    from edgecnn.metrics.mot import MOTCounts, score_sequence
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.mot import read_mot
    from edgecnn.runtime.reid import ReidEncoder
    from edgecnn.runtime.tracker import TRACKER_KEYS

    args = parse_overrides(sys.argv[1:])
    options = {k: args.pop(k, v) for k, v in OPTIONS.items()}
    if not options["reid"]:
        raise SystemExit("give reid=<embedder .onnx or .tflite> (e.g. runs/demo/reid_tflite/best_int8.tflite)")
    tracker_cfg = TRACKER_KEYS.resolve(args, "reid_vs_motion")
    videos = OUT / "data" / f"reid-videos-seed{options['seed']}"
    info = synth_video(videos, sequences=options["sequences"], seed=options["seed"], images=True)
    encoder = ReidEncoder(load_backend(options["reid"]))
    totals = {"motion only": MOTCounts(), "with ReID": MOTCounts()}
    per_seq = {}
    for record in info["sequences"]:
        seq = videos / record["dir"]
        gt = read_mot(seq / "gt" / "gt.txt", min_confidence=1)
        det = noisy_detections(gt, options["drop"], options["jitter"], np.random.default_rng(0))
        per_seq[record["name"]] = {}
        for name, enc in (("motion only", None), ("with ReID", encoder)):
            counts = score_sequence(gt, track(seq, det, enc, tracker_cfg))
            totals[name] = totals[name] + counts
            per_seq[record["name"]][name] = counts.metrics()
        print(record["name"], "  ".join(f"{n}: IDF1 {100 * m['IDF1']:.1f} MOTA {100 * m['MOTA']:.1f} IDs {m['IDs']}"
                                         for n, m in per_seq[record["name"]].items()))
    overall = {name: counts.metrics() for name, counts in totals.items()}
    print("OVERALL  " + "  ".join(f"{n}: IDF1 {100 * m['IDF1']:.2f} MOTA {100 * m['MOTA']:.2f} IDs {m['IDs']}"
                                  for n, m in overall.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    plot(per_seq, overall, OUT / "reid_vs_motion.png")
    atomic_write_json(OUT / "reid_vs_motion.json", {"options": options, "tracker": tracker_cfg,
                                                    "sequences": per_seq, "overall": overall})
    print(f"wrote {OUT / 'reid_vs_motion.json'} and {OUT / 'reid_vs_motion.png'}")


def plot(per_seq: dict, overall: dict, path: Path) -> None:
    from edgecnn.plots import figure, save_figure

    names = [*per_seq, "OVERALL"]
    fig, axes = figure(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("IDF1", "IDs")):
        for k, run in enumerate(overall):
            values = [per_seq[n][run][metric] for n in names[:-1]] + [overall[run][metric]]
            values = [100 * v for v in values] if metric == "IDF1" else values
            ax.bar(np.arange(len(names)) + (k - 0.5) * 0.4, values, 0.4, label=run)
        ax.set_xticks(np.arange(len(names)), names, rotation=20)
        ax.set_title(f"ground-truth boxes as detections: {metric}")
        ax.legend()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
