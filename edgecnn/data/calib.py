"""Representative int8 calibration sets, sampled by strata so rare conditions are not left out.

Each image gets simple features: the class it stands for (detection: its rarest class, or
`background`; classification: its label), brightness and contrast (mean and standard deviation of
gray levels) and, for detection, the median size of its boxes. Quantile bins over the whole split
(brightness in thirds, contrast and box size in halves) crossed with the class make the strata.
Each stratum gets a share of `n` proportional to its size (largest remainders, at least one image
each); when `n` is smaller than the number of strata, the bins coarsen (box size first, then
contrast, then brightness) until every stratum can get one, and if classes alone still outnumber
`n`, the smallest strata go without. Within a stratum the choice is random
by seed. The chosen images are copied to `<out>/images/` and `<out>/calib.json` records the why.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.yolo import image_files, is_image
from edgecnn.fileio import atomic_write_json

LOG = logging.getLogger(__name__)
FEATURE_SIDE = 64  # images are reduced to this longer side before measuring brightness and contrast
BINS = {"brightness": 3, "contrast": 2, "box_size": 2}
COARSEN_ORDER = ("box_size", "contrast", "brightness")


def light_features(path: Path) -> tuple[float, float] | None:
    """(brightness, contrast) in [0, 1] of the gray image; None when unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None
    scale = FEATURE_SIDE / max(image.shape)
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(image.mean()) / 255, float(image.std()) / 255


def collect(data: str | os.PathLike, split: str) -> tuple[list[dict], list[str], str]:
    """Per-image records {path, group, box_size} of the split, the class names and the task."""
    from edgecnn.data import dataset_format, imagefolder, open_dataset, yolo

    data = Path(data)
    kind = dataset_format(data)
    if kind == "yolo":
        spec = open_dataset(data)
        scan = yolo.scan_split(spec, split, check_images=False)
        frequency = np.bincount(np.concatenate([lb[:, 0] for lb in scan.labels]).astype(int) if scan.labels else [],
                                minlength=spec.nc)
        records = []
        for image, labels in scan:
            if len(labels):
                rarest = min(set(labels[:, 0].astype(int)), key=lambda c: (frequency[c], c))
                group, size = spec.names[rarest], float(np.median(np.sqrt(labels[:, 3] * labels[:, 4])))
            else:
                group, size = "background", 0.0
            records.append({"path": image, "group": group, "box_size": size, "classes": sorted(set(labels[:, 0].astype(int).tolist()))})
        return records, list(spec.names), "detect"
    if kind == "imagefolder":
        spec = open_dataset(data)
        scan = imagefolder.scan_folder(spec, split, check_images=False)
        return [{"path": p, "group": spec.names[t], "classes": [t]} for p, t in scan], list(spec.names), "classify"
    if not data.is_dir():
        raise FileNotFoundError(f"calibration source not found: {data} (a data.yaml, an ImageFolder or a folder of images)")
    images = image_files([data])
    if not images:
        raise ValueError(f"{data}: no images")
    return [{"path": p, "group": "all", "classes": []} for p in images], [], "images"


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each value by the population's quantiles (0 when bins is 1)."""
    if bins <= 1 or len(values) == 0:
        return np.zeros(len(values), int)
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def strata_keys(records: list[dict], bins: dict[str, int]) -> list[str]:
    parts = [[r["group"]] for r in records]
    for feature, count in bins.items():
        if feature not in records[0] or count <= 1:
            continue
        values = np.array([r[feature] for r in records])
        for p, b in zip(parts, quantile_bins(values, count)):
            p.append(f"{feature}{b}")
    return ["/".join(p) for p in parts]


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional shares of `n` (largest remainders), at least one each, never above a size."""
    total = sum(sizes.values())
    share = {k: max(1.0, n * v / total) for k, v in sizes.items()}
    out = {k: min(sizes[k], int(s)) for k, s in share.items()}
    order = sorted(sizes, key=lambda k: (-(share[k] - int(share[k])), k))
    while sum(out.values()) < n:
        grew = False
        for k in order:
            if out[k] < sizes[k] and sum(out.values()) < n:
                out[k] += 1
                grew = True
        if not grew:
            break
    while sum(out.values()) > n:  # the minimum of one each overshot: trim the largest shares,
        over = [k for k in out if out[k] > 1]  # then drop the smallest strata
        k = max(over, key=lambda k: (out[k], k)) if over else min((k for k in out if out[k]), key=lambda k: (sizes[k], k))
        out[k] -= 1
    return out


def sample_calibration(data: str | os.PathLike, out: str | os.PathLike, n: int = 200, split: str = "train",
                       seed: int = 0) -> dict:
    """Choose `n` images of `split` by strata, copy them to `<out>/images/`, write `<out>/calib.json`."""
    out = Path(out)
    records, names, task = collect(data, split)
    readable = []
    for record in records:
        features = light_features(record["path"])
        if features is not None:
            record["brightness"], record["contrast"] = features
            readable.append(record)
    if len(readable) < len(records):
        LOG.warning("calibration: skipped %d unreadable image(s)", len(records) - len(readable))
    if not readable:
        raise ValueError(f"{data}: no readable images in split '{split}'")
    if n > len(readable):
        LOG.warning("calibration: asked for %d images, the split has %d; taking all", n, len(readable))
        n = len(readable)
    bins = dict(BINS)
    keys = strata_keys(readable, bins)
    for feature in COARSEN_ORDER:
        if len(set(keys)) <= n:
            break
        bins[feature] = 1
        keys = strata_keys(readable, bins)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    quota = allocate({k: len(v) for k, v in groups.items()}, n)
    rng = np.random.default_rng(seed)
    chosen = sorted(int(i) for k in sorted(groups) for i in rng.choice(groups[k], quota[k], replace=False))
    return write_calibration(out, [readable[i] for i in chosen], [keys[i] for i in chosen], readable, groups, quota, bins,
                             {"source": str(Path(data).resolve()), "split": split, "seed": seed, "task": task, "names": names})


def write_calibration(out: Path, chosen: list[dict], keys: list[str], population: list[dict], groups: dict, quota: dict,
                      bins: dict, info: dict) -> dict:
    images_dir = out / "images"
    tmp = out / ".images-partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = []
    for i, (record, key) in enumerate(zip(chosen, keys)):
        name = f"{i:04d}_{record['path'].name}"
        shutil.copyfile(record["path"], tmp / name)
        files.append({"file": f"images/{name}", "source": str(record["path"]), "stratum": key,
                      "brightness": round(record["brightness"], 4), "contrast": round(record["contrast"], 4),
                      **({"box_size": round(record["box_size"], 4)} if "box_size" in record else {})})
    shutil.rmtree(images_dir, ignore_errors=True)
    tmp.rename(images_dir)

    def stats(records):
        b, c = np.array([r["brightness"] for r in records]), np.array([r["contrast"] for r in records])
        return {"images": len(records),
                "brightness_mean": round(float(b.mean()), 4), "brightness_p10_p90": np.round(np.quantile(b, [0.1, 0.9]), 4).tolist(),
                "contrast_mean": round(float(c.mean()), 4), "contrast_p10_p90": np.round(np.quantile(c, [0.1, 0.9]), 4).tolist()}

    record = {**info, "n": len(files), "bins": bins, "method": "quantile strata x class, proportional allocation",
              "strata": {k: {"population": len(groups[k]), "chosen": quota[k]} for k in sorted(groups)},
              "population": stats(population), "chosen": stats(chosen), "images": files}
    if info["names"] and info["task"] == "detect":
        record["images_per_class"] = {name: sum(c in r["classes"] for r in chosen) for c, name in enumerate(info["names"])}
    atomic_write_json(out / "calib.json", record)
    return record


def calibration_images(path: str | os.PathLike) -> list[Path]:
    """The images of a calibration set (`calib.json` order), or every image under `path`."""
    path = Path(path)
    if (path / "calib.json").is_file():
        import json

        return [path / item["file"] for item in json.loads((path / "calib.json").read_text())["images"]]
    if path.is_dir():
        images = image_files([path])
        if images:
            return images
        raise ValueError(f"{path}: no calibration images")
    if path.is_file() and is_image(path):
        return [path]
    raise FileNotFoundError(f"calibration images not found: {path}")
