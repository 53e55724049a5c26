"""Identity crops for training a ReID embedder, cut from MOTChallenge sequences.

A sequence is a folder with `gt/gt.txt` and its frames in `img1/` (or `seqinfo.ini`'s `imDir`)
or in an `.mp4` (`seqinfo.ini`'s `video`, `<seq>.mp4`, or the folder's only mp4). Ground truth
rows with conf 0 (ignored) or a visibility below `min_visibility` are skipped. The result is an
ImageFolder, `<out>/{train,val}/<seq>_<id>/<frame>.jpg`, with the identities (not the crops)
split between train and val, so val measures how the embedder does on people it never saw.
"""

from __future__ import annotations

import configparser
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edgecnn.fileio import atomic_write_json
from edgecnn.runtime.mot import read_mot, stack_rows

LOG = logging.getLogger(__name__)
MIN_CROP_PX = 8
RECORD = "crops.json"  # written next to the splits; its presence marks crops named by frame


def find_sequences(source: str | os.PathLike) -> list[Path]:
    """Every folder under `source` (itself included) that has `gt/gt.txt`."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"MOT source not found: {source}")
    found = sorted({p.parent.parent for p in source.rglob("gt.txt") if p.parent.name == "gt"})
    if not found:
        raise FileNotFoundError(f"{source}: no sequence with gt/gt.txt")
    return found


def read_seqinfo(seq_dir: Path) -> dict[str, str]:
    path = seq_dir / "seqinfo.ini"
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as err:
        raise ValueError(f"{path}: not a valid seqinfo.ini ({err})") from None
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}


def iter_frames(seq_dir: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number from 1, BGR image) of a sequence, from its image folder or its video."""
    info = read_seqinfo(seq_dir)
    image_dir = seq_dir / info.get("imdir", "img1")
    if image_dir.is_dir() and any(image_dir.iterdir()):
        for path in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
            if not path.stem.isdigit():
                raise ValueError(f"{path}: frame files must be named by frame number (000001.jpg)")
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"{path}: unreadable frame")
            yield int(path.stem), image
        return
    candidates = [seq_dir / info["video"]] if "video" in info else [seq_dir / f"{seq_dir.name}.mp4"]
    videos = [p for p in candidates if p.is_file()] or sorted(seq_dir.glob("*.mp4"))
    if len(videos) != 1:
        raise FileNotFoundError(f"{seq_dir}: no frames (looked for {image_dir}/ and {candidates[0]})")
    capture = cv2.VideoCapture(str(videos[0]))
    if not capture.isOpened():
        raise ValueError(f"{videos[0]}: OpenCV cannot open this video")
    frame_no = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frame_no += 1
            yield frame_no, image
    finally:
        capture.release()


def select_rows(gt: np.ndarray, min_visibility: float, step: int, max_per_id: int) -> np.ndarray:
    """Usable rows of gt.txt, every `step`-th per identity, at most `max_per_id` spread over time."""
    visibility = np.where(gt[:, 8] < 0, 1.0, gt[:, 8])
    keep = gt[(gt[:, 6] > 0) & (visibility >= min_visibility) & (np.minimum(gt[:, 4], gt[:, 5]) >= MIN_CROP_PX)]
    chosen = []
    for ident in np.unique(keep[:, 1]):
        rows = keep[keep[:, 1] == ident]
        rows = rows[np.argsort(rows[:, 0])][::step]
        if len(rows) > max_per_id:
            rows = rows[np.linspace(0, len(rows) - 1, max_per_id).round().astype(int)]
        chosen.append(rows)
    return stack_rows(chosen)


def cut_identity_crops(source: str | os.PathLike, out: str | os.PathLike, val_fraction: float = 0.2,
                       min_visibility: float = 0.5, step: int = 3, max_per_id: int = 60, seed: int = 0) -> dict:
    """Write `<out>/{train,val}/<seq>_<id>/*.jpg` and `<out>/crops.json`; returns the record."""

    out = Path(out)
    sequences = find_sequences(source)
    plans = {seq: select_rows(read_mot(seq / "gt" / "gt.txt"), min_visibility, step, max_per_id) for seq in sequences}
    identities = sorted({f"{seq.name}_{int(i):04d}" for seq, rows in plans.items() for i in rows[:, 1]
                         if (rows[:, 1] == i).sum() >= 2})  # an identity needs two crops to be retrieved
    if len(identities) < 2:
        raise ValueError(f"{source}: fewer than two identities with two usable boxes each")
    order = np.random.default_rng(seed).permutation(len(identities))
    n_val = min(len(identities) - 1, int(round(val_fraction * len(identities)))) if val_fraction > 0 else 0
    split_of = {identities[i]: ("val" if rank < n_val else "train") for rank, i in enumerate(order)}
    tmp = out / ".crops-partial"
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"train": 0, "val": 0}
    for seq, rows in plans.items():
        wanted: dict[int, list[np.ndarray]] = {}
        for row in rows:
            if f"{seq.name}_{int(row[1]):04d}" in split_of:
                wanted.setdefault(int(row[0]), []).append(row)
        last = max(wanted, default=0)
        for frame_no, image in iter_frames(seq):
            for row in wanted.get(frame_no, ()):
                name = f"{seq.name}_{int(row[1]):04d}"
                x0, y0 = max(0, int(row[2])), max(0, int(row[3]))
                x1, y1 = min(image.shape[1], int(round(row[2] + row[4]))), min(image.shape[0], int(round(row[3] + row[5])))
                if x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                target = tmp / split_of[name] / name / f"{frame_no:06d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(target), image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                counts[split_of[name]] += 1
            if frame_no >= last:
                break
    for split in ("train", "val"):
        shutil.rmtree(out / split, ignore_errors=True)
        if (tmp / split).is_dir():
            (tmp / split).rename(out / split)
    shutil.rmtree(tmp, ignore_errors=True)
    record = {"source": str(Path(source).resolve()), "sequences": [s.name for s in sequences], "seed": seed,
              "min_visibility": min_visibility, "step": step, "max_per_id": max_per_id,
              "identities": len(identities), "crops": sum(counts.values()),
              "splits": {s: {"identities": sum(v == s for v in split_of.values()), "crops": counts[s]} for s in counts}}
    atomic_write_json(out / RECORD, record)
    return record
