"""Structured pruning of the demo detector: 30/50/70% MAC cuts, before and after fine-tuning.

    python benchmarks/prune_table.py [--parent best.pt] [--n 800] [--epochs 30] [--imgsz 320]
        [--cuts 0.3 0.5 0.7] [--steps 3] [--ft-epochs 5] [--criterion l2] [--profile-imgsz 320]
    python benchmarks/prune_table.py --structure-only [--parent best.pt] [--profile-imgsz 320]

Without --parent it trains the float parent on the synthetic detection set first (as
benchmarks/train_detector.py does). Each cut runs `edgecnn prune` (steps prune → fine-tune
rounds) and the table shows params, MACs, fp32 weight size, mAP50-95 just after pruning and
after fine-tuning, and single-image CPU latency (one thread, torch and ONNX Runtime) at
--profile-imgsz. Target: >= 50% fewer MACs with <= 1.0 point of mAP50-95 lost after fine-tuning.
--structure-only prunes the parent (default: a freshly built --model) once per cut without data,
training or evaluation: what each cut gives in params, MACs, size and latency, in a minute.
Writes runs/benchmarks/prune_table.{json,png}. Latencies on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import OUT

from edgecnn.fileio import atomic_write_json

TARGET_DROP = 1.0
MEANINGFUL_MAP = 0.1  # below this parent mAP50-95 a drop of a point says nothing


def parent_checkpoint(args) -> tuple[Path, Path]:
    """(checkpoint, data.yaml): the given parent, or one trained here on the synthetic set."""
    from common import synthetic_detect_data, train

    data = Path(args.data) if args.data else synthetic_detect_data(args.n, max(args.n // 4, 8), args.imgsz)
    if args.parent:
        return Path(args.parent), data
    out = OUT / "prune_table" / "parent"
    train(data, out, model=args.model, imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, device=args.device,
          workers=args.workers, close_mosaic=max(1, args.epochs // 5))
    return out / "best.pt", data


def profile(path: str, imgsz: int, onnx: Path) -> dict:
    from edgecnn.compress.measure import model_profile
    from edgecnn.models import load_checkpoint

    model, meta = load_checkpoint(path)
    return model_profile(model, meta, imgsz, onnx, threads=1, runs=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", help="float checkpoint to prune (default: train one)")
    parser.add_argument("--data", help="data.yaml (default: the synthetic detection set)")
    parser.add_argument("--n", type=int, default=800, help="synthetic training images")
    parser.add_argument("--imgsz", type=int, default=320, help="training and evaluation size")
    parser.add_argument("--profile-imgsz", type=int, default=None, help="size for MACs and latency (default: imgsz)")
    parser.add_argument("--epochs", type=int, default=30, help="parent training epochs")
    parser.add_argument("--cuts", type=float, nargs="+", default=[0.3, 0.5, 0.7], help="fractions of MACs to remove")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--ft-epochs", type=int, default=5, help="fine-tuning epochs per round")
    parser.add_argument("--mosaic", type=float, default=None, help="fine-tuning mosaic probability (default: the trainer's)")
    parser.add_argument("--criterion", default="l2", choices=("l1", "l2", "bn", "taylor"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default="yolo-n")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--structure-only", action="store_true", help="prune and profile only (no data, no mAP)")
    args = parser.parse_args()
    if args.structure_only:
        return structure_only(args)

    from edgecnn.compress.workflow import prune_checkpoint
    from edgecnn.train.keys import TRAIN_KEYS

    parent, data = parent_checkpoint(args)
    size = args.profile_imgsz or args.imgsz
    train_cfg = {**TRAIN_KEYS.defaults(), "data": str(data), "imgsz": args.imgsz, "batch": args.batch,
                 "device": args.device, "workers": args.workers, "plots": False, "close_mosaic": 1,
                 "mosaic": args.mosaic}
    rows = [{"cut": 0.0, "model": str(parent), **profile(str(parent), size, OUT / "prune_table" / "parent.onnx")}]
    for cut in args.cuts:
        out = OUT / "prune_table" / f"cut{int(round(cut * 100))}"
        result = prune_checkpoint(parent, train_cfg, out, target_macs=1.0 - cut, steps=args.steps,
                                  criterion=args.criterion, ft_epochs=args.ft_epochs, max_drop=float("inf"),
                                  latency=False)
        rounds = json.loads(Path(result["artifacts"]["report"]).read_text())["rounds"]
        rows[0]["mAP50_95"] = result["mAP50_95_parent"]
        rows.append({"cut": cut, "model": result["artifacts"]["model"], "mAP50_95": result["mAP50_95"],
                     "mAP50_95_pruned": rounds[-1]["mAP50_95_pruned"],
                     **profile(result["artifacts"]["model"], size, out / "pruned.onnx")})
    parent_map = rows[0]["mAP50_95"]
    for row in rows:
        row["macs_kept"] = row["macs"] / rows[0]["macs"]
        row["drop_points"] = (parent_map - row["mAP50_95"]) * 100
    print_table(rows, size)
    if parent_map < MEANINGFUL_MAP:
        print(f"the parent's mAP50-95 ({parent_map:.4f}) is too low for the {TARGET_DROP}-point target to mean anything; "
              "train it longer (--epochs, --n) or pass a trained --parent")
    met = ", ".join(f"cut {r['cut']:.0%}" for r in rows[1:] if r["macs_kept"] <= 0.5 and r["drop_points"] <= TARGET_DROP)
    print(f"target (>= 50% fewer MACs, <= {TARGET_DROP} point mAP50-95 lost): {'met by ' + met if met else 'NOT met'}")
    atomic_write_json(OUT / "prune_table.json", {"args": vars(args), "profile_imgsz": size, "rows": rows})
    plot(rows, OUT / "prune_table.png", size)


def structure_only(args) -> None:
    import torch

    from edgecnn.compress.measure import example_input, model_profile
    from edgecnn.compress.prune import ChannelPruner, count_macs_params
    from edgecnn.models import build_model, load_checkpoint

    size = args.profile_imgsz or args.imgsz
    rows = []
    for cut in [0.0, *args.cuts]:
        torch.manual_seed(0)
        if args.parent:
            model, meta = load_checkpoint(args.parent)
        else:
            model = build_model(args.model, num_classes=5)
            meta = {"task": model.task, "names": [f"c{i}" for i in range(5)], "mean": [0.0] * 3, "std": [1.0] * 3,
                    "strides": list(getattr(model, "strides", ()))}
        example = example_input(model, size)
        if cut:
            ChannelPruner(model, example, args.criterion).prune_to((1 - cut) * count_macs_params(model, example)[0])
        out = OUT / "prune_table" / "structure" / f"cut{int(round(cut * 100))}.onnx"
        rows.append({"cut": cut, **model_profile(model, meta, size, out, threads=1, runs=30)})
    for row in rows:
        row["macs_kept"] = row["macs"] / rows[0]["macs"]
    print(f"\n{args.parent or args.model} pruned with {args.criterion}, profiled at {size}x{size}, 1 CPU thread (noisy shared machine)")
    print("| cut | MACs kept | params M | GMACs | MB fp32 | torch ms | ORT ms |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cut']:.0%} | {r['macs_kept']:.3f} | {r['params'] / 1e6:.3f} | {r['macs'] / 1e9:.3f} | "
              f"{r['weights_mb']:.2f} | {r['latency_torch_ms']:.1f} | {r['latency_onnx_ms']:.1f} |")
    atomic_write_json(OUT / "prune_structure.json", {"args": vars(args), "profile_imgsz": size, "rows": rows})


def print_table(rows: list[dict], size: int) -> None:
    print(f"\nprofile at {size}x{size}, 1 CPU thread (shared machine: latencies are noisy)")
    head = ("cut", "params M", "GMACs", "MB fp32", "mAP pruned", "mAP tuned", "drop pt", "torch ms", "ORT ms")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        pruned = f"{r['mAP50_95_pruned']:.4f}" if "mAP50_95_pruned" in r else "-"
        print(f"| {r['cut']:.0%} | {r['params'] / 1e6:.3f} | {r['macs'] / 1e9:.3f} | {r['weights_mb']:.2f} | {pruned} | "
              f"{r['mAP50_95']:.4f} | {r['drop_points']:.2f} | {r['latency_torch_ms']:.1f} | {r['latency_onnx_ms']:.1f} |")


def plot(rows: list[dict], path: Path, size: int) -> None:
    from edgecnn.plots import figure, save_figure

    fig, axes = figure(1, 2, figsize=(12, 4), squeeze=False)
    left, right = axes[0]
    left.plot([r["macs_kept"] for r in rows], [r["mAP50_95"] for r in rows], "o-", label="fine-tuned")
    left.plot([r["macs_kept"] for r in rows[1:]], [r["mAP50_95_pruned"] for r in rows[1:]], "x--", label="just pruned")
    left.set(xlabel="MACs kept", ylabel="mAP50-95", title="accuracy against MACs")
    left.invert_xaxis()
    left.legend()
    labels = [f"{r['cut']:.0%}" for r in rows]
    x = range(len(rows))
    right.bar([i - 0.2 for i in x], [r["latency_torch_ms"] for r in rows], 0.4, label="torch")
    right.bar([i + 0.2 for i in x], [r["latency_onnx_ms"] for r in rows], 0.4, label="ONNX Runtime")
    right.set_xticks(list(x), labels)
    right.set(xlabel="MACs cut", ylabel="ms / image (1 thread)", title=f"CPU latency at {size}")
    right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
