"""Annotated footage → a YOLO dataset: MOTChallenge sequences (gt.txt with img1/ or a video) cut
into train and val frame ranges, and the frames after them kept as a MOT sequence to track.

A sequence is a folder with `gt/gt.txt` and its frames (`crops.iter_frames`: img1/ or an .mp4,
decoded here). Ground-truth rows follow MOTChallenge: `frame, id, left, top, width, height, conf,
class, visibility`. A row with conf 0 is an ignore region (MOT17's distractors and occluders,
objects hidden past a threshold) and never becomes a label; nor does one less visible than
`min_visibility`. `names` gives the class of each MOT class id (1 → names[0], ...); ids past the
list are left out, and a class column of -1 or 0 (MOT15 has none) is names[0]. Boxes are clipped
to the frame; what is left under `MIN_BOX_PX` is dropped.

Writes `<out>/images/{train,val}/<seq>_<frame>.jpg`, `<out>/labels/...`, `<out>/data.yaml`, and
`<out>/test/<seq>/{<seq>.mp4, gt/gt.txt, seqinfo.ini}`: the test frames renumbered from 1, for
`edgecnn track` and `edgecnn mot-eval` on footage the detector never saw.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.crops import find_sequences, iter_frames, read_seqinfo
from edgecnn.fileio import atomic_write_json, atomic_write_text
from edgecnn.data.yolo import format_labels, write_data_yaml
from edgecnn.runtime.boxes import clip_boxes, tlwh_to_xyxy, xyxy_to_cxcywh

MIN_BOX_PX = 2
SPLITS = ("train", "val", "test")
DEFAULT_SHARES = (0.6, 0.2, 0.2)  # of each sequence's frames, in order, when no ranges are given


def parse_range(text: str | None, key: str) -> tuple[int, int] | None:
    """'1-150' → (1, 150) (frames count from 1, both ends kept); None stays None."""
    if text is None:
        return None
    first, sep, last = str(text).partition("-")
    try:
        span = (int(first), int(last)) if sep else None
    except ValueError:
        span = None
    if span is None or span[0] < 1 or span[1] < span[0]:
        raise ValueError(f"{key}={text!r}: expected a frame range first-last, e.g. 1-150 (frames count from 1)")
    return span


def frame_ranges(n_frames: int, ranges: dict[str, tuple[int, int] | None]) -> dict[str, tuple[int, int]]:
    """Each split's frame range: the given ones, the others from DEFAULT_SHARES when none is given,
    or (test only) the frames after the last given range."""
    if not any(ranges.values()):
        cuts = np.round(np.cumsum((0,) + DEFAULT_SHARES) * n_frames).astype(int)
        return {s: (int(cuts[i]) + 1, int(cuts[i + 1])) for i, s in enumerate(SPLITS) if cuts[i + 1] > cuts[i]}
    out = {s: r for s, r in ranges.items() if r}
    if "test" not in out:
        last = max(r[1] for r in out.values())
        if last < n_frames:
            out["test"] = (last + 1, n_frames)
    return out


def label_rows(gt: np.ndarray, frame: int, names: list[str], width: int, height: int,
               min_visibility: float) -> np.ndarray:
    """YOLO rows `class cx cy w h` (normalized) of one frame's usable ground truth."""
    rows = gt[gt[:, 0] == frame]
    mot_class = np.where(rows[:, 7] <= 0, 1, rows[:, 7]).astype(int)
    visibility = np.where(rows[:, 8] < 0, 1.0, rows[:, 8])
    usable = (rows[:, 6] != 0) & (visibility >= min_visibility) & (mot_class <= len(names))
    cxcywh = xyxy_to_cxcywh(clip_boxes(tlwh_to_xyxy(rows[usable, 2:6]), (height, width)))
    big = (cxcywh[:, 2:] >= MIN_BOX_PX).all(axis=1)
    scale = np.array([width, height, width, height])
    return np.concatenate([mot_class[usable, None] - 1, cxcywh / scale], axis=1)[big]


def mot_to_yolo(source: str | os.PathLike, out: str | os.PathLike, names: list[str],
                train: tuple[int, int] | None = None, val: tuple[int, int] | None = None,
                test: tuple[int, int] | None = None, min_visibility: float = 0.0, step: int = 1) -> dict:
    """Convert every sequence under `source`; returns the record written to `<out>/mot_yolo.json`."""
    from edgecnn.runtime.mot import read_mot, write_mot

    if not names:
        raise ValueError("mot_to_yolo: names is empty; give the class names of MOT class ids 1, 2, ...")
    out = Path(out)
    tmp = out.parent / f".{out.name}-partial"
    shutil.rmtree(tmp, ignore_errors=True)
    record = {"source": str(Path(source).resolve()), "names": list(names), "min_visibility": min_visibility,
              "step": step, "sequences": {}}
    counts = {s: {"images": 0, "boxes": 0} for s in ("train", "val")}
    for seq in find_sequences(source):
        gt = read_mot(seq / "gt" / "gt.txt")
        n_frames = int(read_seqinfo(seq).get("seqlength", 0)) or int(gt[:, 0].max())
        spans = frame_ranges(n_frames, {"train": train, "val": val, "test": test})
        record["sequences"][seq.name] = spans
        writer, test_rows, last = None, [], max(b for _, b in spans.values())
        for frame_no, image in iter_frames(seq):
            if frame_no > last:
                break
            split = next((s for s, (a, b) in spans.items() if a <= frame_no <= b), None)
            if split is None:
                continue
            h, w = image.shape[:2]
            if split == "test":
                writer = writer or _video_writer(tmp / "test" / seq.name / f"{seq.name}.mp4", seq, w, h)
                writer.write(image)
                rows = gt[gt[:, 0] == frame_no].copy()
                rows[:, 0] = frame_no - spans["test"][0] + 1
                test_rows.append(rows)
                continue
            if (frame_no - spans[split][0]) % step:
                continue
            labels = label_rows(gt, frame_no, names, w, h, min_visibility)
            stem = f"{seq.name}_{frame_no:06d}"
            (tmp / "images" / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp / "images" / split / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            atomic_write_text(tmp / "labels" / split / f"{stem}.txt", format_labels(labels))
            counts[split]["images"] += 1
            counts[split]["boxes"] += len(labels)
        if writer is not None:
            writer.release()
            test_dir = tmp / "test" / seq.name
            write_mot(test_dir / "gt" / "gt.txt", np.concatenate(test_rows))
            atomic_write_text(test_dir / "seqinfo.ini", _seqinfo(seq, spans["test"], w, h))
    for split in ("train", "val"):
        if not counts[split]["images"]:
            raise ValueError(f"{source}: no {split} frames (ranges {record['sequences']})")
    write_data_yaml(tmp / "data.yaml", names, train="images/train", val="images/val")
    record["splits"] = counts
    atomic_write_json(tmp / "mot_yolo.json", record)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return record


def _video_writer(path: Path, seq: Path, width: int, height: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = float(read_seqinfo(seq).get("framerate", 30))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video {path}")
    return writer


def _seqinfo(seq: Path, span: tuple[int, int], width: int, height: int) -> str:
    fps = read_seqinfo(seq).get("framerate", "30")
    return (f"[Sequence]\nname={seq.name}\nframeRate={fps}\nseqLength={span[1] - span[0] + 1}\n"
            f"imWidth={width}\nimHeight={height}\nvideo={seq.name}.mp4\nsourceFrames={span[0]}-{span[1]}\n")
