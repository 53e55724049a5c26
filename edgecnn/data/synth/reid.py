"""`synth_reid`: an ImageFolder of identity crops (one folder per object identity, disjoint
identities in train and val, look-alike twins among them) for training a ReID embedder on many
more identities than a few videos hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data import scene
from edgecnn.data.scene import CLASSES, Layer
from edgecnn.data.synth.dataset import GENERATOR_VERSION, build_dataset, progress

# Signs and balls of one kind are identical by design, so they make no identities.
REID_SHARE = {"person": 0.6, "car": 0.3, "box": 0.1}


def synth_identity_crop(rng: np.random.Generator, style: dict) -> np.ndarray:
    """One detector-like crop of the object `style`: its own size, pose, background, light, occlusion."""
    style = dict(style, flip=bool(rng.random() < 0.5)) if style["cls"] in ("person", "car") else style
    patch, mask = scene.render_object(style, float(np.exp(rng.uniform(np.log(40), np.log(160)))), float(rng.uniform(0, 2 * np.pi)))
    ph, pw = mask.shape
    mx, my = int(pw * rng.uniform(0.0, 0.2)), int(ph * rng.uniform(0.0, 0.12))  # loose boxes, as a detector's
    h, w = ph + 2 * my, pw + 2 * mx
    frame, _ = scene.render_background(rng, h, w, clutter=int(rng.integers(0, 4)))
    layers = [Layer(patch, mask, mx + int(rng.integers(-mx // 2 - 1, mx // 2 + 1)), my, 0)]
    if rng.random() < 0.3:  # another object in front covers a side
        other = scene.sample_style(CLASSES[int(rng.integers(len(CLASSES)))], rng)
        o_patch, o_mask = scene.render_object(other, float(rng.uniform(0.3, 0.7)) * max(h, w))
        x = int(rng.choice([-0.7, 0.7]) * o_mask.shape[1] + rng.uniform(0, w))
        layers.append(Layer(o_patch, o_mask, x, int(rng.uniform(0.3, 0.9) * h), 1))
    scene.compose(frame, layers)
    return scene.apply_lighting(frame, scene.sample_lighting(rng), rng)


def synth_reid(out: str | os.PathLike, n: int = 300, per_id: int = 16, seed: int = 0, val_fraction: float = 0.2,
               force: bool = False) -> dict:
    """Write `<out>/{train,val}/<id>/*.jpg` for `n` identities; a quarter are twins of another."""
    config = {"kind": "reid", "n": n, "per_id": per_id, "seed": seed, "val_fraction": val_fraction, "version": GENERATOR_VERSION}

    def fill(root: Path) -> dict:
        rng = np.random.default_rng([seed, 200])
        names, shares = list(REID_SHARE), list(REID_SHARE.values())
        styles, twins = [], []
        for ident in range(n):
            earlier = [i for i, s in enumerate(styles) if s["cls"] in ("person", "car")]
            if earlier and rng.random() < 0.25:
                source = earlier[int(rng.integers(len(earlier)))]
                styles.append(scene.make_look_alike(styles[source], rng))
                twins.append([source, ident])
            else:
                styles.append(scene.sample_style(str(rng.choice(names, p=shares)), rng))
        val = set(rng.permutation(n)[: int(round(val_fraction * n))].tolist())
        for ident in progress(range(n), "synth reid identities"):
            folder = root / ("val" if ident in val else "train") / f"{ident:05d}"
            folder.mkdir(parents=True)
            for k in range(per_id):
                image = synth_identity_crop(np.random.default_rng([seed, 201, ident, k]), styles[ident])
                if not cv2.imwrite(str(folder / f"{k:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                    raise RuntimeError(f"could not write {folder / f'{k:03d}.jpg'}")
        return {"names": list(CLASSES), "classes": {f"{i:05d}": s["cls"] for i, s in enumerate(styles)}, "twins": twins,
                "splits": {"train": {"identities": n - len(val)}, "val": {"identities": len(val)}}}

    return build_dataset(out, config, fill, force)
