"""Classifier training figures: LeNet-5 on digits (target: under 1% validation error) and ResNet-18
on a small set.

    python benchmarks/classifiers.py [--digits synth|sklearn|both] [--n 10000] [--epochs 30]
                                     [--sklearn-epochs 60] [--skip-resnet]

Digits are the synthetic MNIST-like `classify` set (Hershey-font strokes, slanted and elastically
bent, size-normalized and centred by mass; 32x32, 10000 train / 2000 val) and scikit-learn's
bundled 8x8 digits upscaled to 32x32 (1437 train / 360 val, fixed-seed split); nothing downloads.
Both train with one fixed recipe (below) chosen before looking at validation figures; no early
stopping, so the last epoch's error is reported beside the best epoch's (which validation picks).
The ResNet run trains resnet18 (3x3 stem for small inputs) on a smaller synthetic set.
Prints the figures; writes runs/benchmarks/classifiers.{json,png} (validation error per epoch).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from common import OUT, run_command

from edgecnn.fileio import atomic_write_json

# The canon LeNet-5 recipe: AdamW with warmup and a cosine decay, weight EMA, and the classic
# rotation/shift/shear/zoom augmentation that the classify task applies by default.
LENET = dict(model="lenet5", batch=64, optimizer="adamw", lr0=0.002, scheduler="cosine", patience=0)
RESNET = dict(model="resnet18", imgsz=32, batch=64, optimizer="adamw", lr0=0.002, scheduler="cosine", patience=0)


def synth_digits(n: int, val: int) -> Path:
    from edgecnn.data.synth import synth_classify

    root = OUT / "data" / f"synth-digits-{n}-{val}"
    synth_classify(root, n=n, val=val, imgsz=32, seed=0)
    return root


def sklearn_digits() -> Path:
    """scikit-learn's 1797 8x8 digits as an ImageFolder at 32x32, split 80/20 with a fixed seed."""
    import cv2
    import numpy as np
    from sklearn.datasets import load_digits

    root = OUT / "data" / "sklearn-digits"
    if (root / "val").is_dir():
        return root
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    for rank, i in enumerate(order):
        split = "val" if rank < len(order) // 5 else "train"
        image = cv2.resize((digits.images[i] * 255 / 16).astype(np.uint8), (32, 32), interpolation=cv2.INTER_CUBIC)
        folder = root / split / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return root


def train(data: Path, name: str, **keys) -> dict:
    import json

    out = OUT / "classifiers" / name
    start = time.perf_counter()
    result = run_command("train", {"data": str(data), "out": str(out), **keys})
    history = json.loads((out / "results.json").read_text())["history"]
    errors = [1 - row["val/top1"] for row in history]
    val_images = sum(1 for p in (data / "val").rglob("*.png"))
    return {"name": name, "model": keys["model"], "data": str(data), "train_images": sum(1 for _ in (data / "train").rglob("*.png")),
            "val_images": val_images, "error": 1 - result["top1"], "best_epoch": result["best_epoch"] + 1,
            "last_error": errors[-1], "last_errors": round(errors[-1] * val_images), "epochs": result["epochs"],
            "train_images_per_s": result["train_images_per_s"], "wall_s": round(time.perf_counter() - start, 1),
            "error_per_epoch": errors, "recipe": keys}


def plot(runs: list[dict], path: Path) -> None:
    from edgecnn.plots import figure, save_figure

    fig, ax = figure(figsize=(7, 4.5))
    for r in runs:
        errors = [100 * e for e in r["error_per_epoch"]]
        ax.plot(range(1, len(errors) + 1), errors, marker=".", label=f"{r['name']} (last {errors[-1]:.2f}%)")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="1% target")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error (%)")
    ax.set_title("Classifier validation error per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", choices=("synth", "sklearn", "both"), default="both")
    parser.add_argument("--n", type=int, default=10000, help="synthetic training images (validation: n/5)")
    parser.add_argument("--epochs", type=int, default=30, help="LeNet-5 epochs on the synthetic digits")
    parser.add_argument("--sklearn-epochs", type=int, default=60, help="LeNet-5 epochs on the 1437 sklearn digits")
    parser.add_argument("--resnet-n", type=int, default=2000)
    parser.add_argument("--resnet-epochs", type=int, default=5)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # per-epoch lines on stderr

    runs = []
    if args.digits in ("synth", "both"):
        runs.append(train(synth_digits(args.n, args.n // 5), "lenet5-synth", **LENET, epochs=args.epochs, device=args.device))
    if args.digits in ("sklearn", "both"):
        runs.append(train(sklearn_digits(), "lenet5-sklearn", **LENET, epochs=args.sklearn_epochs, device=args.device))
    if not args.skip_resnet:
        small = synth_digits(args.resnet_n, args.resnet_n // 5)
        runs.append(train(small, "resnet18-synth", **RESNET, epochs=args.resnet_epochs, device=args.device))
    print(f"{'run':<16} {'train/val':>11} {'best err':>8} {'@epoch':>6} {'last err':>8} {'epochs':>6} {'img/s':>7} {'wall min':>8}")
    for r in runs:
        print(f"{r['name']:<16} {r['train_images']:>5}/{r['val_images']:<5} {r['error'] * 100:>7.2f}% {r['best_epoch']:>6} "
              f"{r['last_error'] * 100:>7.2f}% {r['epochs']:>6} {r['train_images_per_s']:>7.0f} {r['wall_s'] / 60:>8.1f}")
    for r in runs:
        if r["model"] == "lenet5":
            verdict = "meets" if r["last_error"] < 0.01 else "misses"
            print(f"{r['name']}: last-epoch error {r['last_error'] * 100:.2f}% ({r['last_errors']}/{r['val_images']}) "
                  f"{verdict} the <1% target")
    atomic_write_json(OUT / "classifiers.json", {"args": vars(args), "runs": runs})
    plot(runs, OUT / "classifiers.png")
    print(f"wrote {OUT / 'classifiers.json'} and {OUT / 'classifiers.png'}")


if __name__ == "__main__":
    main()
