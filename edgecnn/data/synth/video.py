"""`synth_video`: MOTChallenge sequences (`<split>/<seq>/<seq>.mp4`, `gt/gt.txt`, `seqinfo.ini`,
optionally `img1/`) of the same classes walking, driving and rolling across a fixed camera's
view, crossing and hiding each other; some objects are twins that differ in one detail.
`camera_motion` films them with a panning, shaking camera instead (`CameraPath`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data import scene
from edgecnn.data.scene import CLASSES, Layer
from edgecnn.data.synth.dataset import GENERATOR_VERSION, MIN_BOX_PX, MIN_VISIBILITY, build_dataset, progress
from edgecnn.fileio import atomic_write_text

# Longer side of each class near the camera (bottom row), as a fraction of the frame height.
NEAR_SIZE = {"person": 0.55, "car": 0.75, "sign": 0.16, "ball": 0.13, "box": 0.28}


# Speed in object lengths per frame: people walk about 2.5 % of their height per frame at 30 fps.
SPEED = {"person": (0.012, 0.035), "car": (0.012, 0.035), "ball": (0.03, 0.08), "box": (0.0, 0.0), "sign": (0.0, 0.0)}
WAIT_CHANCE, WAIT_FRAMES = 0.5, (10, 40)  # of a person who becomes hidden: stop for this many frames
MOVER_SHARE = {"person": 0.42, "car": 0.2, "ball": 0.12, "box": 0.13, "sign": 0.13}


@dataclass
class Track:
    """One object of a video: where its foot point is, how it moves and when it enters."""

    ident: int
    cls: int
    style: dict
    x: float
    y: float
    vx: float
    vy: float
    start: int
    lift: float = 0.0  # signs hang this many pixels above their pole's foot
    phase: float = 0.0
    twin_of: int | None = None
    hidden: bool = False
    wait: int = 0  # frames left standing still


class VideoScene:
    """A fixed camera's view: background, ground band, and the objects that cross it."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, frames: int,
                 names: tuple[str, ...] = CLASSES):
        self.h, self.w, self.frames, self.rng, self.names = height, width, frames, rng, names
        self.background, self.horizon = scene.render_background(rng, height, width, clutter=int(rng.integers(4, 14)))
        self.ground = (self.horizon + 0.12 * (height - self.horizon), height * 1.03)
        self.tracks: list[Track] = []
        lanes = int(rng.integers(2, 4))  # walkways spread over near and far ground, where people cross
        paths = self.ground[0] + (np.arange(lanes) + rng.uniform(0.2, 0.8, lanes)) / lanes * (self.ground[1] - self.ground[0])
        movers = [c for c in MOVER_SHARE if c in names]
        share = np.array([MOVER_SHARE[c] for c in movers])
        count = int(rng.integers(6, 13))
        p = share if len(movers) == len(MOVER_SHARE) else share / share.sum()
        classes = ["person"] * 3 + list(rng.choice(movers, count - 3, p=list(p)))
        for ident, cls in enumerate(classes, 1):
            self.tracks.append(self.new_track(ident, str(cls), paths))
        self.foreground = [Layer(*scene.render_occluder(rng, height, width), -2)] if rng.random() < 0.5 else []
        self.light = {"gain": float(rng.uniform(0.7, 1.2)), "bias": float(rng.uniform(-25, 25)),
                      "ramp": float(rng.uniform(-0.25, 0.25)), "ramp_angle": float(rng.uniform(0, 2 * np.pi)),
                      "gamma": float(rng.uniform(0.8, 1.25)), "cast": rng.uniform(0.93, 1.07, 3).astype(np.float32).tolist(),
                      "noise": float(rng.uniform(1, 5)), "blur": 0}
        self.flicker = (float(rng.uniform(0.02, 0.08)), float(rng.uniform(60, 200)))
        self.noise = rng.standard_normal((height, width, 3), dtype=np.float32)

    def depth(self, y: float) -> float:
        """Apparent scale at ground row `y`: 0.15 at the horizon's edge of the band, 1 at the bottom."""
        return 0.15 + 0.85 * float(np.clip((y - self.horizon) / (self.h - self.horizon), 0, 1.1))

    def size(self, track: Track) -> float:
        return NEAR_SIZE[self.names[track.cls]] * self.h * self.depth(track.y)

    def new_track(self, ident: int, cls: str, paths: np.ndarray) -> Track:
        rng = self.rng
        style = scene.sample_style(cls, rng)
        twin_of = None
        taken = {t.twin_of for t in self.tracks}
        same = [t for t in self.tracks if self.names[t.cls] == cls and t.twin_of is None and t.ident not in taken]
        if cls in ("person", "car") and same and (rng.random() < 0.35 or not any(t.twin_of for t in self.tracks)):
            source = same[int(rng.integers(len(same)))]
            style, twin_of = scene.make_look_alike(source.style, rng), source.ident
        y = float(rng.uniform(*self.ground))
        if cls == "person":
            y = float(paths[int(rng.integers(len(paths)))] + rng.normal(0, 0.02 * self.h))
        direction = 1.0 if rng.random() < 0.5 else -1.0
        vx = direction * float(rng.uniform(*SPEED[cls])) * NEAR_SIZE[cls] * self.h * self.depth(y)
        vy = {"person": float(rng.uniform(-0.15, 0.15)), "ball": float(rng.uniform(-2, 2))}.get(cls, 0.0)
        track = Track(ident, self.names.index(cls), style, float(rng.uniform(0.08, 0.92) * self.w), y, vx, vy, start=0,
                      twin_of=twin_of)
        if cls == "box" and rng.random() < 0.3:
            track.vx = direction * float(rng.uniform(0.2, 0.6))
        if cls == "sign":
            track.lift = float(rng.uniform(0.25, 0.45)) * self.h * self.depth(y)
            foot = (int(track.x), int(min(y, self.h - 1)))
            cv2.line(self.background, foot, (foot[0], int(y - track.lift)), (110, 110, 110), max(1, int(3 * self.depth(y))))
        elif vx and rng.random() < 0.6:  # enter from the side it walks away from
            track.start = int(rng.integers(0, int(0.7 * self.frames)))
            half = self.size(track) / 2
            track.x = -half if vx > 0 else self.w + half
        track.style["flip"] = bool(vx < 0) if cls in ("person", "car") else track.style["flip"]
        return track

    def step(self, track: Track) -> None:
        if track.wait > 0:
            track.wait -= 1
            return
        track.x += track.vx
        track.y += track.vy
        size = self.size(track)
        if self.names[track.cls] == "ball":
            if not 0 < track.x < self.w:
                track.vx = abs(track.vx) * (1 if track.x <= 0 else -1)
            if not self.ground[0] < track.y < self.ground[1]:
                track.vy = abs(track.vy) * (1 if track.y <= self.ground[0] else -1)
            track.phase += track.vx / max(1.0, size / 2)
        else:
            track.phase += abs(track.vx) / max(1.0, 0.12 * size)
            track.y = float(np.clip(track.y, *self.ground))

    def maybe_wait(self, track: Track, layer: Layer, visibility: float) -> None:
        """People who step behind something sometimes stop there for a while, as people do; a
        constant-velocity prediction then walks on without them, which only appearance undoes."""
        in_frame = layer.x >= 0 and layer.x + layer.mask.shape[1] <= self.w
        hidden = visibility < MIN_VISIBILITY and in_frame
        if hidden and not track.hidden and self.names[track.cls] == "person" and self.rng.random() < WAIT_CHANCE:
            track.wait = int(self.rng.integers(*WAIT_FRAMES))
        track.hidden = hidden

    def layer(self, track: Track) -> Layer:
        patch, mask = scene.render_object(track.style, self.size(track), track.phase)
        ph, pw = mask.shape
        return Layer(patch, mask, int(round(track.x - pw / 2)), int(round(track.y - track.lift - ph)), track.ident)

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `t` (0-based) and its ground truth rows (frame, id, box, conf, class+1, visibility)."""
        active = [tr for tr in self.tracks if tr.start <= t]
        layers = sorted((self.layer(tr) for tr in active), key=lambda layer: layer.y + layer.mask.shape[0])
        layers = [layer for layer in layers if layer.x < self.w and layer.y < self.h
                  and layer.x + layer.mask.shape[1] > 0 and layer.y + layer.mask.shape[0] > 0]
        frame = self.background.copy()
        all_layers = layers + self.foreground
        visible = scene.visible_boxes(scene.compose(frame, all_layers), all_layers)
        rows = []
        by_id = {tr.ident: tr for tr in active}
        for layer in layers:
            box, vis = visible[layer.owner]
            if box is None:
                box = in_frame_box(layer, self.h, self.w)
                if box is None:
                    continue
            conf = 1.0 if vis >= MIN_VISIBILITY and min(box[2] - box[0], box[3] - box[1]) >= MIN_BOX_PX else 0.0
            rows.append([t + 1, layer.owner, box[0], box[1], box[2] - box[0], box[3] - box[1], conf,
                         by_id[layer.owner].cls + 1, round(vis, 3)])
            self.maybe_wait(by_id[layer.owner], layer, vis)
        for tr in active:
            self.step(tr)
        light = dict(self.light, gain=self.light["gain"] * (1 + self.flicker[0] * np.sin(2 * np.pi * t / self.flicker[1])))
        noise = np.roll(self.noise, (int(self.rng.integers(self.h)), int(self.rng.integers(self.w))), axis=(0, 1))
        return scene.apply_lighting(frame, light, self.rng, noise), np.asarray(rows, np.float64).reshape(-1, 9)


def in_frame_box(layer: Layer, h: int, w: int) -> np.ndarray | None:
    """Tight box of a layer's mask pixels inside the frame, hidden or not."""
    ph, pw = layer.mask.shape
    x0, y0, x1, y1 = max(layer.x, 0), max(layer.y, 0), min(layer.x + pw, w), min(layer.y + ph, h)
    if x1 <= x0 or y1 <= y0:
        return None
    m = layer.mask[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x] > 0
    cols, rows = np.flatnonzero(m.any(0)), np.flatnonzero(m.any(1))
    if not len(cols):
        return None
    return np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], np.float32)


def seqinfo_text(name: str, frames: int, fps: int, width: int, height: int) -> str:
    return (f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps}\nseqLength={frames}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.jpg\nvideo={name}.mp4\n")


def write_sequence(seq_dir: Path, rng: np.random.Generator, frames: int, width: int, height: int, fps: int,
                   images: bool, camera: "CameraPath | None" = None, names: tuple[str, ...] = CLASSES) -> dict:
    """Render one sequence into `seq_dir` (mp4, gt/gt.txt, seqinfo.ini, optional img1/), seen
    through `camera` when given (a moving camera), else from the scene's fixed view."""
    from edgecnn.runtime.mot import write_mot

    name = seq_dir.name
    world = VideoScene(rng, height, width, frames, names)
    (seq_dir / "gt").mkdir(parents=True)
    if images:
        (seq_dir / "img1").mkdir()
    video = seq_dir / f"{name}.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video {video}")
    gt = []
    try:
        for t in progress(range(frames), f"synth video {name}"):
            frame, rows = world.render(t)
            if camera is not None:
                frame, rows = camera.view(t, frame, rows)
            writer.write(frame)
            if images:
                cv2.imwrite(str(seq_dir / "img1" / f"{t + 1:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            gt.append(rows)
    finally:
        writer.release()
    gt = np.concatenate(gt)
    write_mot(seq_dir / "gt" / "gt.txt", gt)
    atomic_write_text(seq_dir / "seqinfo.ini", seqinfo_text(name, frames, fps, width, height))
    return {"name": name, "frames": frames, "objects": len(world.tracks), "boxes": int((gt[:, 6] > 0).sum()),
            "ignored": int((gt[:, 6] == 0).sum()),
            "twins": [[t.twin_of, t.ident] for t in world.tracks if t.twin_of is not None]}


def synth_video(out: str | os.PathLike, sequences: int = 4, frames: int = 240, width: int = 640, height: int = 480,
                fps: int = 30, seed: int = 0, images: bool = False, force: bool = False,
                camera_motion: float = 0.0, classes: tuple[str, ...] | None = None) -> dict:
    """Write MOTChallenge sequences; the last `max(1, sequences // 4)` go to `test/`, the rest to `train/`.
    `camera_motion` > 0 films them with a panning, shaking camera (`CameraPath`); 0 keeps the
    fixed camera, byte for byte as before the option existed. `classes` (a subset of
    `scene.CLASSES` with "person", as a detector trained on `synth_detect(classes=…)` knows them)
    puts only those in the scenes; None puts all, byte for byte as before the option existed."""
    names = scene.check_classes(classes)
    if "person" not in names:
        raise ValueError(f"classes={list(classes)}: the videos need 'person' (people walk every scene)")
    config = {"kind": "video", "sequences": sequences, "frames": frames, "width": width, "height": height, "fps": fps,
              "seed": seed, "images": images, "version": GENERATOR_VERSION}
    if camera_motion:
        config["camera_motion"] = camera_motion
    if classes:
        config["classes"] = list(names)
    n_test = max(1, sequences // 4)

    def fill(root: Path) -> dict:
        records = []
        for s in range(sequences):
            split = "test" if s >= sequences - n_test else "train"
            seq_dir = root / split / f"synth-{s + 1:02d}"
            # the camera draws from its own generator: the scene stays the fixed camera's
            camera = CameraPath(np.random.default_rng([seed, 200 + s]), width, height, camera_motion) \
                if camera_motion else None
            record = write_sequence(seq_dir, np.random.default_rng([seed, 100 + s]), frames, width, height, fps, images,
                                    camera, names)
            records.append({**record, "split": split, "dir": f"{split}/{seq_dir.name}",
                            "video": f"{split}/{seq_dir.name}/{seq_dir.name}.mp4"})
        return {"names": list(names), "class_column": "class id + 1 (1 = person, as MOT17 pedestrians)",
                "sequences": records}

    return build_dataset(out, config, fill, force)


class CameraPath:
    """A moving camera: each frame shows a window of the fixed view, 1 / (1 + 2 * motion) of its
    size, that pans along a slow sway plus a quicker shake (random periods and phases), scaled back
    to the full frame. Ground truth moves with it; boxes are clipped to the frame and visibility
    falls with the part cut off."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, motion: float):
        self.w, self.h, self.zoom = width, height, 1 + 2 * motion
        self.periods = rng.uniform((120, 30), (300, 70), (2, 2))  # frames: (sway, shake) per axis
        self.phases = rng.uniform(0, 2 * np.pi, (2, 2))

    def offset(self, t: int) -> tuple[float, float]:
        """Top-left corner of the window in the fixed view's pixels at frame `t`."""
        wave = 0.75 * np.sin(2 * np.pi * t / self.periods[:, 0] + self.phases[:, 0]) \
            + 0.25 * np.sin(2 * np.pi * t / self.periods[:, 1] + self.phases[:, 1])
        margin = np.array([self.w, self.h]) * (1 - 1 / self.zoom) / 2
        return tuple(margin * (1 + wave))

    def view(self, t: int, frame: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, y0 = self.offset(t)
        z = self.zoom
        warp = np.array([[z, 0, -z * x0], [0, z, -z * y0]])
        frame = cv2.warpAffine(frame, warp, (self.w, self.h), flags=cv2.INTER_LINEAR)
        rows = rows.copy()
        left, top = z * (rows[:, 2] - x0), z * (rows[:, 3] - y0)
        right, bottom = left + z * rows[:, 4], top + z * rows[:, 5]
        area = np.maximum((right - left) * (bottom - top), 1e-9)
        left, right = np.clip(left, 0, self.w), np.clip(right, 0, self.w)
        top, bottom = np.clip(top, 0, self.h), np.clip(bottom, 0, self.h)
        keep = (right - left >= MIN_BOX_PX) & (bottom - top >= MIN_BOX_PX)
        rows[:, 8] = np.round(rows[:, 8] * (right - left) * (bottom - top) / area, 3)
        rows[:, 2:6] = np.stack([left, top, right - left, bottom - top], axis=1)
        rows[rows[:, 8] < MIN_VISIBILITY, 6] = 0.0
        return frame, rows[keep]
