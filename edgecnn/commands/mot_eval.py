"""`edgecnn mot-eval gt=<gt.txt | dir> res=<results.txt | dir> [iou=0.5]`: MOTChallenge scores.

With directories, `gt` holds `<SEQ>/gt/gt.txt` and `res` holds `<SEQ>.txt`; every sequence with
ground truth must have results. Prints one row per sequence and the overall row (counts summed
over sequences, as the MOTChallenge devkit and py-motmetrics do). HOTA, DetA, AssA and LocA are
TrackEval's (averaged over its IoU thresholds 0.05..0.95, so iou= does not change them; combined
over sequences as TrackEval combines them); --json also has DetRe, DetPr, AssRe, AssPr, HOTA(0), LocA(0).
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.config import Key, Schema

HELP = "score MOTChallenge tracking results against ground truth (HOTA, IDF1, MOTA, MOTP, IDs, MT/ML ...)"
KEYS = Schema(
    Key("gt", None, "ground truth: a gt.txt, or a directory of <SEQ>/gt/gt.txt", required=True),
    Key("res", None, "tracker results: a .txt, or a directory of <SEQ>.txt", required=True),
    Key("iou", 0.5, "a box matches ground truth at this IoU or more", min=0.0, max=1.0),
)
POSITIONAL = ("gt", "res")
PERCENT = ("HOTA", "DetA", "AssA", "LocA", "IDF1", "IDP", "IDR", "Recall", "Precision", "MOTA", "MOTP")
HOTA_SHOWN = ("HOTA", "DetA", "AssA", "LocA")  # the human table's HOTA columns


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
    from edgecnn.metrics import hota, mot

    total, total_hota, sequences = mot.MOTCounts(), hota.HOTACounts(), {}
    for name, (gt_file, res_file) in pairs(Path(cfg["gt"]), Path(cfg["res"])).items():
        gt, res = mot.read_sequence_file(gt_file, True), mot.read_sequence_file(res_file, False)
        counts, hota_counts = mot.score_sequence(gt, res, cfg["iou"]), hota.score_sequence(gt, res)
        sequences[name] = {**hota_counts.metrics(), **counts.metrics()}
        total, total_hota = total + counts, total_hota + hota_counts
    return {**total_hota.metrics(), **total.metrics(), "iou": cfg["iou"], "sequences": sequences, "artifacts": {}}


def print_human(result: dict) -> None:
    from edgecnn.metrics.mot import METRICS

    columns = HOTA_SHOWN + METRICS
    rows = {**result["sequences"], "OVERALL": {k: result[k] for k in columns}}
    width = max(map(len, rows))
    print(f"{'':<{width}} " + " ".join(f"{m:>9}" for m in columns))
    for name, metrics in rows.items():
        cells = [f"{100 * metrics[m]:8.1f}%" if m in PERCENT else f"{metrics[m]:>9}" for m in columns]
        print(f"{name:<{width}} " + " ".join(cells))
