"""What the benchmarks share: where they write, running a command, the synthetic detection set and
training on it, the noisy detections the tracking benchmarks feed the tracker, and the figure
they tune tracker settings on.

Run a benchmark from the repository root, `PYTHONPATH=. python benchmarks/<name>.py`: Python puts
benchmarks/ itself first on sys.path, so `from common import …` needs no path edits, and the root
on PYTHONPATH gives `edgecnn` and the tests' helpers (`from tests.mqtt_broker import Broker`: the
real servers, the cached test exports), which pytest reaches the same way (`pythonpath` in pyproject.toml).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("runs/benchmarks")


def run_command(name: str, keys: dict[str, Any]) -> dict[str, Any]:
    """`edgecnn <name>` with `keys` (checked by its KEYS), in this process; returns its result."""
    from edgecnn.commands import load_command

    command = load_command(name)
    return command.run(command.KEYS.resolve(keys, f"benchmark: edgecnn {name}")) or {}


def synthetic_detect_data(n: int, val: int, imgsz: int) -> Path:
    """The synthetic detection set of `n` train and `val` val images (made once, then reused)."""
    from edgecnn.data.synth import synth_detect

    root = OUT / "data" / f"synth-detect-{n}-{val}-{imgsz}"
    synth_detect(root, n=n, val=val, imgsz=imgsz, seed=0)
    return root / "data.yaml"


def train(data: Path, out: Path, **keys) -> tuple[dict, list[dict], float]:
    """Run `edgecnn train`; returns its result, its per-epoch history and the total wall time."""
    start = time.perf_counter()
    result = run_command("train", {"data": str(data), "out": str(out), **keys})
    wall = time.perf_counter() - start
    history = json.loads((out / "results.json").read_text())["history"]
    return result, history, wall


def draw_curves(ax, curves: dict[str, list[tuple[float, float]]], title: str) -> None:
    """mAP50-95 against training wall time, one line per run."""
    for label, points in curves.items():
        ax.plot([t / 60 for t, _ in points], [m for _, m in points], marker="o", label=label)
    ax.set(xlabel="training wall time (min)", ylabel="mAP50-95 (val)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()


def noisy_detections(rows: np.ndarray, drop: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Ground-truth MOT rows (N, 10) as a detector might see them: a share `drop` left out, each box's
    left, top, width and height moved by normal noise of `jitter` times its width or height."""
    det = rows[rng.random(len(rows)) >= drop].copy()
    det[:, 2:6] += rng.normal(0, jitter, (len(det), 4)) * det[:, [4, 5, 4, 5]]
    return det


def idf1_plus_mota(counts) -> float:
    """The figure tracker settings are chosen on: IDF1 + MOTA of `metrics.mot.MOTCounts`."""
    m = counts.metrics()
    return m["IDF1"] + m["MOTA"]
