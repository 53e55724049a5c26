"""Classifier training figures: LeNet-5 on digits (target: under 1% validation error) and a ResNet
on a small set.

    python benchmarks/classifiers.py [--digits synth|sklearn] [--n 10000] [--epochs 15] [--skip-resnet]

Digits are the synthetic `classify` set (random fonts, strokes, clutter, distortion; 32x32) or
scikit-learn's bundled 8x8 digits upscaled to 32x32 (local, nothing downloads). The ResNet run
trains resnet18 (3x3 stem for small inputs) on the synthetic digits at 32x32. Prints validation
error, epochs and training images/s; writes runs/benchmarks/classifiers.json.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from edgecnn.fileio import atomic_write_json

OUT = Path("runs/benchmarks")


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
    from edgecnn.commands import train as command

    cfg = command.KEYS.resolve({"data": str(data), "out": str(OUT / "classifiers" / name), **keys}, "benchmark")
    start = time.perf_counter()
    result = command.run(cfg)
    return {"model": keys["model"], "data": str(data), "top1": result["top1"], "error": 1 - result["top1"],
            "best_epoch": result["best_epoch"] + 1, "epochs": result["epochs"],
            "train_images_per_s": result["train_images_per_s"], "wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", choices=("synth", "sklearn"), default="synth")
    parser.add_argument("--n", type=int, default=10000, help="synthetic training images")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--resnet-n", type=int, default=2000)
    parser.add_argument("--resnet-epochs", type=int, default=5)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # per-epoch lines on stderr

    data = synth_digits(args.n, args.n // 5) if args.digits == "synth" else sklearn_digits()
    runs = [train(data, "lenet5", model="lenet5", epochs=args.epochs, batch=64, lr0=0.003, device=args.device,
                  patience=max(args.epochs // 3, 3))]
    if not args.skip_resnet:
        small = synth_digits(args.resnet_n, args.resnet_n // 5)
        runs.append(train(small, "resnet18", model="resnet18", imgsz=32, epochs=args.resnet_epochs, batch=64,
                          lr0=0.002, device=args.device))
    print(f"{'model':<10} {'data':<40} {'val error':>9} {'epochs':>6} {'img/s':>7} {'wall min':>8}")
    for r in runs:
        print(f"{r['model']:<10} {Path(r['data']).name:<40} {r['error'] * 100:>8.2f}% {r['epochs']:>6} "
              f"{r['train_images_per_s']:>7.0f} {r['wall_s'] / 60:>8.1f}")
    lenet = runs[0]
    verdict = "meets" if lenet["error"] < 0.01 else "misses"
    print(f"LeNet-5 {verdict} the <1% error target ({lenet['error'] * 100:.2f}%)")
    atomic_write_json(OUT / "classifiers.json", {"args": vars(args), "runs": runs})


if __name__ == "__main__":
    main()
