"""CamVid (11 classes, 480x360) semantic segmentation from scratch: train, then mIoU on val at full size.

    PYTHONPATH=. python benchmarks/camvid_seg.py [--model lraspp-mnv3s] [--epochs 20] [--crop 240 320] [--batch 8]
                                    [--camvid ../shared/data/camvid] [--device auto]
                                    [--prune-macs 0.6 --prune-steps 1 --prune-epochs 25]

Writes a `task: segment` data.yaml for the CamVid folder at run time (the data is never copied),
trains with `edgecnn train` (random 240x320 crops of the 360x480 frames, scale jitter 0.5-1.5,
flips, colour; median-frequency class weights; AdamW, cosine), resuming from `last.pt` when run
again, then scores `best.pt` with `edgecnn val` on the 101 val frames at 480x360 (every pixel,
the ignore class 11 left out). Writes runs/benchmarks/camvid_seg.json with mIoU, per-class IoU,
pixel accuracy, epochs and wall time. Skips (exit 0, a message) when the CamVid folder is absent.
`--prune-macs F`: then `edgecnn prune` of best.pt to F of its MACs (the same ratio in every layer,
`--prune-steps` rounds of `--prune-epochs` fine-tuning each, the training's crop, batch and class
weights), scored the same way, into the JSON's `prune`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from common import OUT, run_command

from edgecnn.fileio import atomic_write_json

CAMVID = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "camvid"
NAMES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian", "bicyclist")
IGNORE = 11


def camvid_yaml(camvid: Path, out: Path) -> Path:
    """A data.yaml whose `path` is the CamVid folder (images/ and masks/ stay where they are)."""
    from edgecnn.data.segment import write_segment_yaml

    return write_segment_yaml(out / "camvid.yaml", list(NAMES), train="images/train", val="images/val",
                              root=str(camvid.resolve()), ignore_index=IGNORE)


def recipe(data: Path, args) -> dict:
    """The training keys the from-scratch run and the pruning's fine-tuning share."""
    return {"data": str(data), "imgsz": [360, 480], "crop": list(args.crop), "batch": args.batch, "lr0": args.lr0,
            "patience": 0, "class_weights": "auto", "device": args.device, "workers": args.workers, "plots": True}


def train(data: Path, out: Path, args) -> dict:
    keys = {**recipe(data, args), "out": str(out), "model": args.model, "epochs": args.epochs,
            "resume": (out / "last.pt").is_file(), "weights": args.weights,
            "warmup_epochs": 0.0 if args.weights else 1.0}
    return run_command("train", keys)


def prune(data: Path, out: Path, args) -> dict:
    """`edgecnn prune` of out/best.pt to --prune-macs, the same ratio in every layer; its result."""
    keys = {**recipe(data, args), "model": str(out / "best.pt"), "out": str(out / f"prune-{args.prune_macs}"),
            "target_macs": args.prune_macs, "global": False, "steps": args.prune_steps,
            "ft_epochs": args.prune_epochs, "max_map_drop": 100.0, "latency": False}
    result = run_command("prune", keys)
    return {k: result[k] for k in ("mIoU", "mIoU_parent", "macs_kept", "params")} | {
        "steps": args.prune_steps, "ft_epochs": args.prune_epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lraspp-mnv3s")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--crop", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr0", type=float, default=0.002)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--weights", help="continue from this best.pt (a second, lower-lr stage; no warmup)")
    parser.add_argument("--name", help="the run's folder and JSON name (default: the model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--camvid", type=Path, default=CAMVID)
    parser.add_argument("--prune-macs", type=float, help="then prune best.pt to this fraction of its MACs")
    parser.add_argument("--prune-steps", type=int, default=1)
    parser.add_argument("--prune-epochs", type=int, default=25, help="fine-tuning epochs per prune round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.camvid / "images" / "train").is_dir():
        print(f"camvid_seg: skipped, no CamVid at {args.camvid} (see ../shared/data/README.md)")
        return
    name = args.name or args.model
    out = OUT / "camvid_seg" / name
    out.mkdir(parents=True, exist_ok=True)
    data = camvid_yaml(args.camvid, out)
    start = time.perf_counter()
    summary = train(data, out, args)
    scores = run_command("val", {"model": str(out / "best.pt"), "data": str(data)})
    history = json.loads((out / "results.json").read_text())["history"]
    record = {"model": args.model, "weights": args.weights, "lr0": args.lr0,
              "dataset": "CamVid val (101 frames, 480x360, 11 classes, 11 ignored)",
              "from_scratch": True, "train": {"imgsz": [360, 480], "crop": list(args.crop), "batch": args.batch,
                                               "epochs_planned": args.epochs, "epochs_run": len(history),
                                               "best_epoch": summary.get("best_epoch"),
                                               "train_time_s": history[-1]["time_s"] if history else None,
                                               "wall_s_this_call": round(time.perf_counter() - start, 1)},
              "val": {k: scores[k] for k in ("mIoU", "pixel_acc", "mean_acc", "iou", "latency_ms_p50")},
              "history": [{"epoch": r["epoch"], "mIoU": r.get("val/mIoU"), "time_s": r["time_s"]} for r in history]}
    if args.prune_macs:
        record["prune"] = prune(data, out, args)
        print(f"{name} pruned to {100 * record['prune']['macs_kept']:.1f} % of its MACs: mIoU "
              f"{100 * record['prune']['mIoU']:.1f} (parent {100 * record['prune']['mIoU_parent']:.1f})")
    atomic_write_json(OUT / f"camvid_seg_{name}.json", record)
    print(f"{name}: CamVid val mIoU {100 * scores['mIoU']:.1f}, pixel acc {100 * scores['pixel_acc']:.1f} "
          f"after {len(history)} epochs ({record['train']['train_time_s']:.0f} s of training)")


if __name__ == "__main__":
    main()
