"""PNG plots of a training run: loss and metric curves, PR curves, confusion matrix, first-layer filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgecnn.plots import figure, save_figure


def _panels(rows: int = 1, cols: int = 1, size=(6, 4)):
    """(fig, axes (rows, cols)) with each panel `size` inches."""
    return figure(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)


def plot_curves(history: list[dict], out: Path) -> list[Path]:
    """losses.png (train loss parts per epoch) and metrics.png (validation metrics per epoch)."""
    if not history:
        return []
    epochs = [row["epoch"] for row in history]
    groups = {
        "losses.png": [k for k in history[0] if k.startswith("train/")],
        "metrics.png": [k for k in history[0] if k.startswith("val/")],
    }
    written = []
    for name, keys in groups.items():
        if not keys:
            continue
        fig, axes = _panels(1, len(keys), size=(3.2, 3))
        for ax, key in zip(axes[0], keys):
            ax.plot(epochs, [row[key] for row in history], marker=".")
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        written.append(save_figure(fig, out / name))
    return written


def plot_pr_curves(curves: dict, out: Path) -> Path | None:
    """pr_curves.png: precision vs recall at IoU 0.5, one line per class, mean in bold."""
    precision = curves.get("precision", {})
    if not precision:
        return None
    fig, axes = _panels(size=(6, 5))
    ax = axes[0, 0]
    recall = np.asarray(curves["recall"])
    for name, p in precision.items():
        ax.plot(recall, p, linewidth=1, label=f"{name} AP50={np.mean(p):.3f}")
    mean = np.mean(list(precision.values()), axis=0)
    ax.plot(recall, mean, color="black", linewidth=2.5, label=f"all mAP50={mean.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curves (IoU 0.5)")
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, out / "pr_curves.png")


def plot_confusion(confusion, names, out: Path) -> Path:
    """confusion_matrix.png: rows are true classes, columns predictions, normalized per row."""
    matrix = np.asarray(confusion, dtype=np.float64)
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    n = len(names)
    fig, axes = _panels(size=(max(4, 0.45 * n + 2), max(3.5, 0.45 * n + 1.5)))
    ax = axes[0, 0]
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax)
    ticks = range(n) if n <= 40 else []
    ax.set_xticks(list(ticks), [names[i] for i in ticks], rotation=90, fontsize=7)
    ax.set_yticks(list(ticks), [names[i] for i in ticks], fontsize=7)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    return save_figure(fig, out / "confusion_matrix.png")


def plot_first_layer_filters(model: torch.nn.Module, out: Path, limit: int = 64) -> Path | None:
    """filters.png: the first convolution's kernels as small RGB (or grey) images."""
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None:
        return None
    w = conv.weight.detach().float().cpu()[:limit]
    w = (w - w.amin(dim=(1, 2, 3), keepdim=True)) / (w.amax(dim=(1, 2, 3), keepdim=True) - w.amin(dim=(1, 2, 3), keepdim=True) + 1e-12)
    cols = int(np.ceil(np.sqrt(len(w))))
    rows = int(np.ceil(len(w) / cols))
    fig, axes = _panels(rows, cols, size=(0.8, 0.8))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(w):
            k = w[i].permute(1, 2, 0).numpy()
            ax.imshow(k if k.shape[2] == 3 else k[..., 0], cmap=None if k.shape[2] == 3 else "gray", interpolation="nearest")
    fig.suptitle(f"first-layer filters {tuple(conv.weight.shape)}", fontsize=8)
    return save_figure(fig, out / "filters.png")
