"""Do exported artifacts compute what the source model computes? Max abs output differences.

Compared on real images (the validation split of a data.yaml, else calibration images) put
through the same letterbox and backend interface the device uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecnn.runtime.backends import Backend
from edgecnn.runtime.preprocess import letterbox

# Bound on max |candidate - reference| per output, relative to max(1, max |reference|).
# int8 has no fixed bound here: its accuracy is judged by the mAP gate.
TOLERANCE = {"onnx": 1e-3, "fp32": 1e-3, "fp16": 5e-2, "int8": None}
# Segmentation: least share of pixels whose class must agree with the reference's (argmax ties
# may flip a few in float); int8 is judged by the mIoU gate.
SEG_AGREEMENT = {"onnx": 0.999, "fp32": 0.999, "fp16": 0.99, "int8": None}


class ParityError(RuntimeError):
    """An exported artifact's outputs differ from its source model's beyond tolerance."""


def image_paths(source: str | os.PathLike, limit: int, split: str = "val") -> list[Path]:
    """Up to `limit` image paths, evenly spread, from a data.yaml's `split` (else its first split)
    or an image directory."""
    from edgecnn.data import dataset_format, open_dataset
    from edgecnn.data.yolo import image_files

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"image source not found: {source}")
    if dataset_format(source) in ("yolo", "segment"):
        spec = open_dataset(source)
        paths = spec.images(split if split in spec.splits else next(iter(spec.splits)))
    else:
        paths = image_files([source])
    if not paths:
        raise ValueError(f"{source}: no images found")
    picks = np.linspace(0, len(paths) - 1, min(limit, len(paths))).round().astype(int)
    return [paths[i] for i in dict.fromkeys(picks)]


def letterboxed_images(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    """uint8 RGB `(N, h, w, 3)` letterboxed to `size`, as the device feeds its backend."""
    from edgecnn.data.loaders import read_rgb

    return np.stack([letterbox(read_rgb(p), size)[0] for p in paths])


def max_abs_diff(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.abs(candidate[name] - reference[name]).max()) for name in reference}


def check_parity(reference: Backend, candidate: Backend, images: np.ndarray, kind: str) -> dict[str, float]:
    """Max abs difference per output of `candidate` against `reference`; ParityError beyond TOLERANCE[kind].

    Segmentation models are compared by their class maps instead (`check_seg_parity`).
    """
    if reference.meta["task"] == "segment":
        return check_seg_parity(reference, candidate, images, kind)
    ref = reference.predict(images)
    diffs = max_abs_diff(ref, candidate.predict(images))
    bound = TOLERANCE[kind]
    if bound is not None:
        for name, diff in diffs.items():
            limit = bound * max(1.0, float(np.abs(ref[name]).max()))
            if diff > limit:
                raise ParityError(
                    f"{candidate.path}: output '{name}' differs from {reference.path.name} by {diff:.3g} "
                    f"(> {limit:.3g} allowed for {kind}) on {len(images)} images; the conversion changed the model"
                )
    return diffs


def check_seg_parity(reference: Backend, candidate: Backend, images: np.ndarray, kind: str) -> dict[str, float]:
    """{"argmax_agreement": share of pixels of the same class}, both class maps at the input size.

    Logits below the input size are upsampled bilinearly (`runtime.segmenter`), which is what a
    graph's own final Resize computes, so a `stride` head is compared with the float model exactly.
    """
    from edgecnn.runtime.segmenter import Segmenter

    maps = []
    for backend in (reference, candidate):
        segmenter = Segmenter(backend, upsample="linear")
        maps.append(np.stack([segmenter.input_classes(o) for o in backend.predict(images)["segmentation"]]))
    agreement = float((maps[0] == maps[1]).mean())
    bound = SEG_AGREEMENT[kind]
    if bound is not None and agreement < bound:
        raise ParityError(f"{candidate.path}: its classes agree with {reference.path.name} on {agreement:.2%} of the "
                          f"pixels (< {bound:.1%} required for {kind}) of {len(images)} images; the conversion changed "
                          "the model")
    return {"argmax_agreement": agreement}
