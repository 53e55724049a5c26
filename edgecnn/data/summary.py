"""What a dataset holds: images, boxes per class, box sizes (detection), pixels per class
(segmentation); as a table, JSON and a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecnn.data.imagefolder import FolderScan, ImageFolderSpec
from edgecnn.data.yolo import DatasetSpec, SplitScan
from edgecnn.fileio import atomic_write_json
from edgecnn.plots import figure, save_figure

# Box size = sqrt(area) in image pixels; 32 and 96 are COCO's small/medium/large limits.
SIZE_EDGES = (0, 8, 16, 32, 64, 96, 128, 256, 512, float("inf"))
FIRST_CORRUPT = 5


def size_labels() -> list[str]:
    return [f"<{int(b)}" if np.isfinite(b) else f">={int(a)}" for a, b in zip(SIZE_EDGES[:-1], SIZE_EDGES[1:])]


def box_sizes(scan: SplitScan) -> np.ndarray:
    """sqrt(w * h) of every box in pixels of its image."""
    sizes = [np.sqrt(lb[:, 3] * w * lb[:, 4] * h) for lb, (h, w) in zip(scan.labels, scan.shapes) if len(lb)]
    return np.concatenate(sizes) if sizes else np.zeros(0)


def summarize_detection(spec: DatasetSpec, scans: dict[str, SplitScan]) -> dict:
    out = {"task": "detect", "root": str(spec.root), "names": list(spec.names), "splits": {}}
    for split, scan in scans.items():
        classes = np.concatenate([lb[:, 0] for lb in scan.labels]) if scan.labels else np.zeros(0)
        per_class = np.bincount(classes.astype(int), minlength=spec.nc)
        sizes = box_sizes(scan)
        hist, _ = np.histogram(sizes, bins=SIZE_EDGES)
        out["splits"][split] = {
            "images": len(scan), "backgrounds": scan.backgrounds, "missing_labels": scan.missing_labels,
            "corrupt": len(scan.corrupt), "corrupt_first": [str(p) for p in scan.corrupt[:FIRST_CORRUPT]],
            "boxes": int(len(classes)), "boxes_per_class": dict(zip(spec.names, per_class.tolist())),
            "images_per_class": dict(zip(spec.names, [sum(int(c in lb[:, 0]) for lb in scan.labels) for c in range(spec.nc)])),
            "box_size_hist": dict(zip(size_labels(), hist.tolist())),
            "box_size_median": float(np.median(sizes)) if len(sizes) else None,
        }
    return out


def summarize_classification(spec: ImageFolderSpec, scans: dict[str, FolderScan]) -> dict:
    """Images per class; for splits with their own classes (ReID identities), images per identity."""
    task = "classify" if spec.shared_classes else "identities"
    out = {"task": task, "root": str(spec.root), "names": list(spec.names), "splits": {}}
    for split, scan in scans.items():
        counts = scan.counts(len(scan.names))
        entry = {"images": len(scan), "corrupt": len(scan.corrupt), "corrupt_first": [str(p) for p in scan.corrupt[:FIRST_CORRUPT]]}
        if spec.shared_classes:
            entry["images_per_class"] = dict(zip(scan.names, counts))
        else:
            entry.update(identities=len(scan.names), images_per_identity=sorted(counts),
                         images_per_identity_min=min(counts), images_per_identity_median=float(np.median(counts)))
        out["splits"][split] = entry
    return out


def summarize_segmentation(spec, pairs: dict[str, list]) -> dict:
    """Images and pixel shares per class, ignored pixels, masks given as polygons; every mask is
    read and checked (a bad one raises, naming its file)."""
    from edgecnn.data.segment import read_mask

    out = {"task": "segment", "root": str(spec.root), "names": list(spec.names), "ignore_index": spec.ignore_index,
           "splits": {}}
    for split, samples in pairs.items():
        pixels, images_with, ignored, total = np.zeros(spec.nc, np.int64), np.zeros(spec.nc, np.int64), 0, 0
        for image, source in samples:
            mask = read_mask(source, image, spec).reshape(-1)
            labelled = mask[mask != spec.ignore_index].astype(np.int64)
            counts = np.bincount(labelled, minlength=spec.nc)[: spec.nc]
            pixels += counts
            images_with += counts > 0
            ignored, total = ignored + mask.size - labelled.size, total + mask.size
        share = pixels / max(pixels.sum(), 1) * 100
        out["splits"][split] = {
            "images": len(samples), "corrupt": 0, "polygon_labels": sum(source.suffix == ".txt" for _, source in samples),
            "ignored_pct": round(100 * ignored / max(total, 1), 2),
            "images_per_class": dict(zip(spec.names, images_with.tolist())),
            "pixels_pct_per_class": dict(zip(spec.names, np.round(share, 3).tolist())),
        }
    return out


def format_table(summary: dict) -> str:
    """Per-class counts with one column per split, then totals and the box size histogram."""
    splits = list(summary["splits"])
    key = "boxes_per_class" if summary["task"] == "detect" else "images_per_class"
    width = max([len(n) for n in summary["names"]] + [26])
    head = f"{'class':<{width}}" + "".join(f"{s:>10}" for s in splits)
    lines = [head, "-" * len(head)]
    for name in summary["names"] if summary["task"] != "identities" else ():
        lines.append(f"{name:<{width}}" + "".join(f"{summary['splits'][s][key][name]:>10}" for s in splits))
    lines.append("-" * len(head))
    rows = {"detect": ["images", "boxes", "backgrounds", "missing_labels", "corrupt"], "classify": ["images", "corrupt"],
            "identities": ["images", "identities", "images_per_identity_min", "images_per_identity_median", "corrupt"],
            "segment": ["images", "polygon_labels", "ignored_pct"]}[summary["task"]]
    for row in rows:
        lines.append(f"{row:<{width}}" + "".join(f"{summary['splits'][s][row]:>10}" for s in splits))
    if summary["task"] == "detect":
        lines += ["", f"{'box size (px)':<{width}}" + "".join(f"{s:>10}" for s in splits)]
        for label in size_labels():
            lines.append(f"{label:<{width}}" + "".join(f"{summary['splits'][s]['box_size_hist'][label]:>10}" for s in splits))
    return "\n".join(lines)


def plot_summary(summary: dict, path: str | os.PathLike) -> Path:
    """Bars of counts per class and, for detection, the box size histogram, per split."""
    detect = summary["task"] == "detect"
    key = "boxes_per_class" if detect else "images_per_class"
    splits, names = list(summary["splits"]), summary["names"]
    fig, axes = figure(1, 2 if detect else 1, figsize=(12 if detect else 7, 4), squeeze=False)
    if summary["task"] == "identities":
        for split in splits:
            axes[0, 0].hist(summary["splits"][split]["images_per_identity"], bins=20, alpha=0.6, label=split)
        axes[0, 0].set_title("images per identity")
        axes[0, 0].set_ylabel("identities")
        axes[0, 0].legend()
        return save_figure(fig, path)
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        counts = [summary["splits"][split][key][n] for n in names]
        axes[0, 0].bar(np.arange(len(names)) + i * width, counts, width, label=split)
        if detect:
            hist = list(summary["splits"][split]["box_size_hist"].values())
            axes[0, 1].bar(np.arange(len(hist)) + i * width, hist, width, label=split)
    axes[0, 0].set_xticks(np.arange(len(names)) + width * (len(splits) - 1) / 2, names, rotation=90 if len(names) > 12 else 0,
                          fontsize=6 if len(names) > 30 else 9)
    axes[0, 0].set_title("boxes per class" if detect else "images per class")
    axes[0, 0].legend()
    if detect:
        labels = size_labels()
        axes[0, 1].set_xticks(np.arange(len(labels)) + width * (len(splits) - 1) / 2, labels)
        axes[0, 1].set_title("box size sqrt(w*h) in pixels")
        axes[0, 1].legend()
    return save_figure(fig, path)


def save_summary(summary: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {"summary_json": atomic_write_json(out_dir / "summary.json", summary),
            "summary_png": plot_summary(summary, out_dir / "summary.png")}
