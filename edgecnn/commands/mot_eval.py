"""`edgecnn mot-eval gt=<gt.txt | dir> res=<results.txt | dir> [iou=0.5]`: MOTChallenge scores.

With directories, `gt` holds `<SEQ>/gt/gt.txt` and `res` holds `<SEQ>.txt`; every sequence with
ground truth must have results. Prints one row per sequence and the overall row (counts summed
over sequences, as the MOTChallenge devkit and py-motmetrics do).
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.config import Key, Schema

HELP = "Score MOTChallenge tracking results against ground truth (IDF1, MOTA, MOTP, IDs, MT/ML ...)."
KEYS = Schema(
    Key("gt", None, "ground truth: a gt.txt, or a directory of <SEQ>/gt/gt.txt"),
    Key("res", None, "tracker results: a .txt, or a directory of <SEQ>.txt"),
    Key("iou", 0.5, "a box matches ground truth at this IoU or more", min=0.0, max=1.0),
)
POSITIONAL = ("gt", "res")
PERCENT = ("IDF1", "IDP", "IDR", "Recall", "Precision", "MOTA", "MOTP")


def pairs(gt: Path, res: Path) -> dict[str, tuple[Path, Path]]:
    """{sequence: (gt file, results file)}; a sequence without results is an error naming the file."""
    from edgecnn.metrics.mot import sequence_name

    if not gt.exists():
        raise FileNotFoundError(f"ground truth not found: {gt}")
    if not res.exists():
        raise FileNotFoundError(f"results not found: {res}")
    if gt.is_file():
        if res.is_dir():
            res = res / f"{sequence_name(gt)}.txt"
        return {sequence_name(gt): (gt, res)}
    gt_files = sorted(gt.glob("*/gt/gt.txt")) or ([gt / "gt" / "gt.txt"] if (gt / "gt" / "gt.txt").is_file() else [])
    if not gt_files:
        raise FileNotFoundError(f"no <SEQ>/gt/gt.txt under {gt}")
    if res.is_file():
        if len(gt_files) > 1:
            raise FileNotFoundError(f"{gt} holds {len(gt_files)} sequences; res= must be a directory of <SEQ>.txt")
        return {sequence_name(gt_files[0]): (gt_files[0], res)}
    found = {}
    for gt_file in gt_files:
        name = sequence_name(gt_file)
        found[name] = (gt_file, res / f"{name}.txt")
        if not found[name][1].is_file():
            raise FileNotFoundError(f"no results for sequence {name}: {found[name][1]}")
    return found


def run(cfg: dict) -> dict:
    from edgecnn.config import ConfigError
    from edgecnn.metrics.mot import MOTCounts, score_files

    for key in ("gt", "res"):
        if not cfg[key]:
            raise ConfigError(f"edgecnn mot-eval: {key}= is required")
    total, sequences = MOTCounts(), {}
    for name, (gt_file, res_file) in pairs(Path(cfg["gt"]), Path(cfg["res"])).items():
        counts = score_files(gt_file, res_file, cfg["iou"])
        sequences[name] = counts.metrics()
        total = total + counts
    return {**total.metrics(), "iou": cfg["iou"], "sequences": sequences, "artifacts": {}}


def print_human(result: dict) -> None:
    from edgecnn.metrics.mot import METRICS

    rows = {**result["sequences"], "OVERALL": {k: result[k] for k in METRICS}}
    width = max(map(len, rows))
    print(f"{'':<{width}} " + " ".join(f"{m:>9}" for m in METRICS))
    for name, metrics in rows.items():
        cells = [f"{100 * metrics[m]:8.1f}%" if m in PERCENT else f"{metrics[m]:>9}" for m in METRICS]
        print(f"{name:<{width}} " + " ".join(cells))
