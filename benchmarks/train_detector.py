"""mAP against wall time when training the detector on the synthetic detection data.

    python benchmarks/train_detector.py [--n 800] [--epochs 30] [--imgsz 320] [--model yolo-n] [--device auto]

Generates (or reuses) the synthetic set under runs/benchmarks/data/, trains with `edgecnn train`
for the fixed budget of epochs, and prints mAP50-95 / mAP50 after each epoch against the training
wall time, plus training images per second. Writes runs/benchmarks/train_detector.{json,png}.
On a shared CPU the wall time is noisy; the images/s figure says how busy the machine was.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from common import OUT, draw_curves, synthetic_detect_data, train

from edgecnn.fileio import atomic_write_json


def plot(curves: dict[str, list[tuple[float, float]]], path: Path, title: str) -> None:
    from edgecnn.plots import figure, save_figure

    fig, ax = figure(figsize=(6, 4))
    draw_curves(ax, curves, title)
    save_figure(fig, path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800, help="training images")
    parser.add_argument("--val", type=int, default=200, help="validation images")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default="yolo-n")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # per-epoch lines on stderr

    data = synthetic_detect_data(args.n, args.val, args.imgsz)
    keys = dict(model=args.model, imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, device=args.device,
                workers=args.workers, close_mosaic=max(1, args.epochs // 5))
    result, history, wall = train(data, OUT / "train_detector", **keys)
    print(f"{args.model} on {args.n} synthetic images at {args.imgsz}, {args.epochs} epochs, device={args.device}")
    print(f"{'epoch':>5} {'train min':>9} {'mAP50-95':>9} {'mAP50':>7}")
    for row in history:
        print(f"{row['epoch'] + 1:>5} {row['time_s'] / 60:>9.2f} {row['val/mAP50_95']:>9.4f} {row['val/mAP50']:>7.4f}")
    print(f"best mAP50-95 {result['mAP50_95']:.4f} (epoch {result['best_epoch'] + 1}), "
          f"{result['train_images_per_s']:.2f} train images/s, {wall / 60:.1f} min wall in all")
    record = {"args": vars(args), "result": result, "history": history, "wall_s": round(wall, 1)}
    atomic_write_json(OUT / "train_detector.json", record)
    plot({args.model: [(r["time_s"], r["val/mAP50_95"]) for r in history]}, OUT / "train_detector.png",
         f"{args.model}, synthetic detection, imgsz {args.imgsz}")


if __name__ == "__main__":
    main()
