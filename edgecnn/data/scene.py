"""Procedural scenes for the synthetic datasets: object classes, backgrounds, occlusion, lighting.

Each object is drawn by OpenCV into its own patch with a pixel mask, so composing patches in depth
order gives the exact visible pixels of every object: ground-truth boxes are the tight boxes of
those pixels, and visibility is the visible share of the whole object. An object's look is a
`style` (colors, pattern, details, a texture field) sampled once, so the same object drawn again
at another size or walking phase looks the same: what tracking by appearance needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLASSES = ("person", "car", "sign", "ball", "box")
# Height / width of each class's patch (signs and balls are drawn square, then follow `aspect`).
ASPECT_RANGE = {"person": (2.2, 2.8), "car": (0.38, 0.5), "sign": (0.9, 1.1), "ball": (1.0, 1.0), "box": (0.75, 1.3)}

SKIN = [(60, 90, 140), (90, 130, 190), (120, 165, 220), (150, 190, 235), (40, 60, 95)]
HAIR = [(20, 20, 25), (30, 50, 90), (40, 90, 160), (150, 150, 150), (20, 30, 60)]
CAR_PAINT = [(40, 40, 200), (200, 80, 30), (220, 220, 220), (30, 30, 30), (150, 150, 150), (40, 140, 40), (20, 190, 230), (120, 30, 90)]
CARDBOARD = [(70, 120, 170), (60, 105, 150), (90, 140, 185), (40, 80, 120)]


def check_classes(classes) -> tuple[str, ...]:
    """The class names a generator draws: `classes` (distinct names of `CLASSES`), or all of them."""
    if not classes:
        return CLASSES
    names = tuple(str(c) for c in classes)
    unknown = [c for c in names if c not in CLASSES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"classes={list(classes)}: need distinct names of {', '.join(CLASSES)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return names


def random_color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def jitter(rng: np.random.Generator, color, amount: int = 20) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def sample_style(cls: str, rng: np.random.Generator) -> dict:
    """Everything that fixes how one object looks, independent of its size and pose."""
    style = {"cls": cls, "aspect": float(rng.uniform(*ASPECT_RANGE[cls])), "flip": bool(rng.random() < 0.5),
             "texture": rng.random((12, 12)).astype(np.float32), "texture_amp": float(rng.uniform(0.1, 0.35))}
    if cls == "person":
        style.update(skin=jitter(rng, pick(rng, SKIN), 15), hair=pick(rng, HAIR), shirt=random_color(rng),
                     pants=random_color(rng, 0, 160), shoes=random_color(rng, 0, 80),
                     pattern=pick(rng, ("solid", "stripes", "logo", "split")), detail=random_color(rng),
                     hat=bool(rng.random() < 0.3), hat_color=random_color(rng), backpack=bool(rng.random() < 0.3),
                     backpack_color=random_color(rng, 0, 200))
    elif cls == "car":
        style.update(paint=jitter(rng, pick(rng, CAR_PAINT), 25), window=jitter(rng, (90, 60, 40), 20),
                     variant=pick(rng, ("sedan", "hatch", "van")), stripe=bool(rng.random() < 0.3),
                     stripe_color=random_color(rng), rack=bool(rng.random() < 0.25), hub=int(rng.integers(120, 230)))
    elif cls == "sign":
        style.update(kind=pick(rng, ("stop", "yield", "round", "diamond", "speed")), digits=str(int(rng.integers(1, 9)) * 10))
    elif cls == "ball":
        style.update(pattern=pick(rng, ("solid", "beach", "soccer", "tennis", "basket")), base=random_color(rng, 40, 256),
                     colors=[random_color(rng) for _ in range(3)], angle=float(rng.uniform(0, 180)))
        style["aspect"] = 1.0
    elif cls == "box":
        style.update(kind=pick(rng, ("cardboard", "crate", "plastic")), base=jitter(rng, pick(rng, CARDBOARD), 15),
                     plastic=random_color(rng, 30, 230), tape=jitter(rng, (150, 180, 200), 25), sticker=bool(rng.random() < 0.5))
    else:
        raise ValueError(f"unknown synthetic class '{cls}' (known: {', '.join(CLASSES)})")
    return style


def make_look_alike(style: dict, rng: np.random.Generator) -> dict:
    """A copy of `style` that differs in one detail only (a twin for tracking by appearance)."""
    twin = dict(style)
    twin["texture"] = style["texture"].copy()
    cls = style["cls"]
    if cls == "person":
        choice = pick(rng, ("hat", "backpack", "pattern"))
        if choice == "hat":
            twin["hat"] = not style["hat"]
        elif choice == "backpack":
            twin["backpack"] = not style["backpack"]
        else:
            twin["pattern"] = pick(rng, [p for p in ("solid", "stripes", "logo", "split") if p != style["pattern"]])
    elif cls == "car":
        twin["stripe"], twin["rack"] = not style["stripe"], not style["rack"]
    elif cls == "ball":
        twin["pattern"] = pick(rng, [p for p in ("solid", "beach", "soccer", "tennis", "basket") if p != style["pattern"]])
    elif cls == "box":
        twin["sticker"] = not style["sticker"]
        twin["tape"] = random_color(rng)
    else:
        twin["digits"] = str((int(style["digits"]) + 20) % 90 + 10)
    return twin


class Canvas:
    """An object's patch and mask, drawn together; coordinates are fractions of the patch size."""

    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.image = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)

    def pt(self, fx: float, fy: float) -> tuple[int, int]:
        return int(round(fx * (self.w - 1))), int(round(fy * (self.h - 1)))

    def pts(self, points) -> np.ndarray:
        return np.array([self.pt(x, y) for x, y in points], np.int32)

    def poly(self, points, color, shape: bool = True) -> None:
        pts = self.pts(points)
        cv2.fillPoly(self.image, [pts], color, cv2.LINE_AA)
        if shape:
            cv2.fillPoly(self.mask, [pts], 255)

    def circle(self, fx, fy, r: float, color, shape: bool = True, thickness: int = -1) -> None:
        c, radius = self.pt(fx, fy), max(1, int(round(r)))
        cv2.circle(self.image, c, radius, color, thickness, cv2.LINE_AA)
        if shape:
            cv2.circle(self.mask, c, radius, 255, thickness)

    def line(self, p, q, color, thickness: float, shape: bool = True) -> None:
        t = max(1, int(round(thickness)))
        cv2.line(self.image, self.pt(*p), self.pt(*q), color, t, cv2.LINE_AA)
        if shape:
            cv2.line(self.mask, self.pt(*p), self.pt(*q), 255, t)


def draw_person(c: Canvas, s: dict, phase: float) -> None:
    w, h = c.w, c.h
    swing = np.sin(phase)
    leg_t, arm_t = max(1.0, 0.17 * w), max(1.0, 0.11 * w)
    for side in (-1, 1):
        foot = (0.5 + side * 0.2 * swing, 0.96)
        c.line((0.5 + side * 0.09, 0.55), foot, s["pants"], leg_t)
        c.circle(foot[0] + 0.05, 0.97, max(1, 0.07 * w), s["shoes"])
    if s["backpack"]:
        c.poly([(0.66, 0.23), (0.97, 0.25), (0.97, 0.48), (0.66, 0.5)], s["backpack_color"])
    c.poly([(0.22, 0.21), (0.78, 0.21), (0.72, 0.57), (0.28, 0.57)], s["shirt"])
    if s["pattern"] == "stripes":
        for y in np.arange(0.25, 0.56, 0.07):
            c.line((0.25, y), (0.75, y), s["detail"], max(1.0, 0.018 * h), shape=False)
    elif s["pattern"] == "logo":
        c.circle(0.5, 0.33, max(1, 0.13 * w), s["detail"], shape=False)
    elif s["pattern"] == "split":
        c.poly([(0.25, 0.39), (0.75, 0.39), (0.72, 0.57), (0.28, 0.57)], s["detail"], shape=False)
    for side in (-1, 1):
        hand = (0.5 + side * 0.36, 0.5 + 0.04 * side * swing)
        c.line((0.5 + side * 0.27, 0.23), hand, s["shirt"], arm_t)
        c.circle(*hand, max(1, 0.06 * w), s["skin"])
    c.line((0.5, 0.17), (0.5, 0.22), s["skin"], max(1.0, 0.12 * w))
    r = min(0.09 * h, 0.3 * w)
    c.circle(0.5, 0.105, r, s["skin"])
    c.circle(0.5, 0.085, r * 0.9, s["hair"], shape=False)
    if s["hat"]:
        c.poly([(0.3, 0.0), (0.7, 0.0), (0.72, 0.075), (0.28, 0.075)], s["hat_color"])
        c.line((0.18, 0.075), (0.82, 0.075), s["hat_color"], max(1.0, 0.015 * h))


def draw_car(c: Canvas, s: dict, phase: float) -> None:
    paint = s["paint"]
    cabin = {"sedan": [(0.22, 0.42), (0.34, 0.06), (0.68, 0.06), (0.82, 0.42)],
             "hatch": [(0.15, 0.42), (0.24, 0.06), (0.72, 0.06), (0.84, 0.42)],
             "van": [(0.06, 0.42), (0.1, 0.02), (0.74, 0.02), (0.92, 0.42)]}[s["variant"]]
    c.poly(cabin, paint)
    (x0, _), (x1, _), (x2, _), (x3, _) = cabin
    c.poly([(x0 + 0.05, 0.4), (x1 + 0.03, 0.13), (x2 - 0.03, 0.13), (x3 - 0.05, 0.4)], s["window"], shape=False)
    c.line(((x1 + x2) / 2, 0.1), ((x0 + x3) / 2, 0.42), paint, max(1.0, 0.03 * c.w), shape=False)
    c.poly([(0.01, 0.47), (0.12, 0.38), (0.88, 0.38), (0.99, 0.5), (0.99, 0.8), (0.01, 0.8)], paint)
    if s["stripe"]:
        c.line((0.03, 0.6), (0.97, 0.6), s["stripe_color"], max(1.0, 0.07 * c.h), shape=False)
    if s["rack"]:
        c.line((x1, 0.01), (x2, 0.01), (40, 40, 40), max(1.0, 0.04 * c.h))
    r = 0.19 * c.h
    for x in (0.22, 0.78):
        c.circle(x, 0.8, r, (25, 25, 25))
        c.circle(x, 0.8, r * 0.45, (s["hub"],) * 3, shape=False)
    c.circle(0.96, 0.52, max(1, 0.05 * c.h), (170, 240, 250), shape=False)
    c.circle(0.03, 0.52, max(1, 0.05 * c.h), (30, 30, 200), shape=False)


def draw_sign(c: Canvas, s: dict, phase: float) -> None:
    kind, r = s["kind"], 0.5
    if kind == "stop":
        ang = np.linspace(0, 2 * np.pi, 9)[:-1] + np.pi / 8
        c.poly([(0.5 + r * np.cos(a), 0.5 + r * np.sin(a)) for a in ang], (245, 245, 245))
        c.poly([(0.5 + 0.88 * r * np.cos(a), 0.5 + 0.88 * r * np.sin(a)) for a in ang], (30, 30, 200))
        c.poly([(0.2, 0.43), (0.8, 0.43), (0.8, 0.57), (0.2, 0.57)], (245, 245, 245), shape=False)
    elif kind == "yield":
        c.poly([(0.0, 0.02), (1.0, 0.02), (0.5, 0.98)], (30, 30, 210))
        c.poly([(0.17, 0.11), (0.83, 0.11), (0.5, 0.77)], (245, 245, 245), shape=False)
    elif kind == "round":
        c.circle(0.5, 0.5, 0.5 * min(c.w, c.h), (180, 90, 20))
        c.line((0.25, 0.5), (0.72, 0.5), (250, 250, 250), max(1.0, 0.1 * c.h), shape=False)
        c.poly([(0.6, 0.3), (0.82, 0.5), (0.6, 0.7)], (250, 250, 250), shape=False)
    elif kind == "diamond":
        c.poly([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)], (20, 20, 20))
        c.poly([(0.5, 0.07), (0.93, 0.5), (0.5, 0.93), (0.07, 0.5)], (30, 200, 240), shape=False)
        c.circle(0.5, 0.5, 0.12 * min(c.w, c.h), (20, 20, 20), shape=False)
    else:
        c.circle(0.5, 0.5, 0.5 * min(c.w, c.h), (30, 30, 210))
        c.circle(0.5, 0.5, 0.4 * min(c.w, c.h), (245, 245, 245), shape=False)
        scale = 0.018 * c.h
        if scale > 0.15:
            size, _ = cv2.getTextSize(s["digits"], cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(scale * 2)))
            org = ((c.w - size[0]) // 2, (c.h + size[1]) // 2)
            cv2.putText(c.image, s["digits"], org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), max(1, int(scale * 2)), cv2.LINE_AA)


def draw_ball(c: Canvas, s: dict, phase: float) -> None:
    radius = 0.5 * min(c.w, c.h)
    c.circle(0.5, 0.5, radius, s["base"])
    center, axes = c.pt(0.5, 0.5), (max(1, int(radius)), max(1, int(radius)))
    rot = s["angle"] + np.degrees(phase)
    if s["pattern"] == "beach":
        for i, color in enumerate(s["colors"]):
            cv2.ellipse(c.image, center, axes, rot, i * 120, i * 120 + 60, color, -1, cv2.LINE_AA)
    elif s["pattern"] == "soccer":
        c.circle(0.5, 0.5, radius, (235, 235, 235), shape=False)
        for a in np.radians(rot) + np.arange(5) * 2 * np.pi / 5:
            c.circle(0.5 + 0.33 * np.cos(a), 0.5 + 0.33 * np.sin(a), 0.17 * radius, (25, 25, 25), shape=False)
        c.circle(0.5, 0.5, 0.22 * radius, (25, 25, 25), shape=False)
    elif s["pattern"] == "tennis":
        c.circle(0.5, 0.5, radius, (60, 230, 200), shape=False)
        cv2.ellipse(c.image, c.pt(0.05, 0.5), axes, rot, -60, 60, (240, 240, 240), max(1, int(0.1 * radius)), cv2.LINE_AA)
    elif s["pattern"] == "basket":
        c.circle(0.5, 0.5, radius, (30, 110, 230), shape=False)
        t = max(1, int(0.06 * radius))
        cv2.ellipse(c.image, center, (max(1, int(radius * 0.45)), axes[1]), rot, 0, 360, (20, 20, 20), t, cv2.LINE_AA)
        cv2.ellipse(c.image, center, axes, rot, 0, 180, (20, 20, 20), t, cv2.LINE_AA)


def draw_box(c: Canvas, s: dict, phase: float) -> None:
    base = s["plastic"] if s["kind"] == "plastic" else s["base"]
    shade = lambda k: tuple(int(min(255, v * k)) for v in base)  # noqa: E731
    c.poly([(0.0, 0.25), (0.25, 0.0), (1.0, 0.0), (0.75, 0.25)], shade(1.25))
    c.poly([(0.75, 0.25), (1.0, 0.0), (1.0, 0.75), (0.75, 1.0)], shade(0.65))
    c.poly([(0.0, 0.25), (0.75, 0.25), (0.75, 1.0), (0.0, 1.0)], base)
    if s["kind"] == "crate":
        for y in np.linspace(0.4, 0.85, 4):
            c.line((0.0, y), (0.75, y), shade(0.6), max(1.0, 0.02 * c.h), shape=False)
    else:
        t = max(1.0, 0.08 * c.w)
        c.line((0.375, 0.25), (0.375, 1.0), s["tape"], t, shape=False)
        c.line((0.125, 0.125), (0.875, 0.125), s["tape"], t * 0.7, shape=False)
    if s["sticker"]:
        c.poly([(0.45, 0.5), (0.68, 0.5), (0.68, 0.68), (0.45, 0.68)], (235, 235, 235), shape=False)
        c.line((0.48, 0.56), (0.65, 0.56), (30, 30, 30), max(1.0, 0.015 * c.h), shape=False)


DRAW = {"person": draw_person, "car": draw_car, "sign": draw_sign, "ball": draw_ball, "box": draw_box}


def object_size(style: dict, size: float) -> tuple[int, int]:
    """(w, h) in pixels for an object whose longer side is `size` pixels."""
    aspect = style["aspect"]
    if aspect >= 1:
        return max(2, round(size / aspect)), max(2, round(size))
    return max(2, round(size)), max(2, round(size * aspect))


def render_object(style: dict, size: float, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The object's BGR patch and its mask (uint8 0/255) with the longer side `size` pixels."""
    w, h = object_size(style, size)
    canvas = Canvas(w, h)
    DRAW[style["cls"]](canvas, style, phase)
    image, mask = canvas.image, canvas.mask
    if style["flip"]:
        image, mask = image[:, ::-1], mask[:, ::-1]
    texture = cv2.resize(style["texture"], (w, h), interpolation=cv2.INTER_LINEAR)
    gain = 1.0 + style["texture_amp"] * (texture - 0.5) + np.linspace(0.12, -0.12, h, dtype=np.float32)[:, None]
    if style["cls"] == "ball":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dist = np.hypot(xx / w - 0.35, yy / h - 0.35)
        gain = gain * np.clip(1.3 - 0.9 * dist, 0.35, 1.3)
    image = np.clip(image * gain[..., None], 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def lowfreq_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 3) -> np.ndarray:
    """Smooth noise in [0, 1) with about `cells` blobs across, (h, w, channels) float32."""
    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    small = rng.random((gh, gw, channels)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def render_background(rng: np.random.Generator, h: int, w: int, clutter: int | None = None) -> tuple[np.ndarray, int]:
    """A cluttered BGR background and its horizon row (where the ground starts)."""
    horizon = int(h * rng.uniform(0.25, 0.5))
    top, bottom = np.array(random_color(rng), np.float32), np.array(random_color(rng, 30, 200), np.float32)
    rows = np.arange(h, dtype=np.float32)[:, None, None]
    column = np.where(rows < horizon, top + rows / max(1, horizon) * 40, bottom * (0.7 + 0.5 * rows / h))
    image = np.repeat(column.astype(np.float32), w, axis=1)
    image *= 0.75 + 0.5 * lowfreq_noise(rng, h, w, int(rng.integers(3, 10)))
    grain = lowfreq_noise(rng, h, w, max(8, w // int(rng.integers(3, 12))), 1)
    image *= 1 + rng.uniform(0.05, 0.4) * (grain - 0.5)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 24)) if clutter is None else clutter):
        draw_clutter(image, rng, horizon)
    return image, horizon


def draw_clutter(image: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """One distractor that belongs to no class: buildings, trees, lines, outlines, text."""
    h, w = image.shape[:2]
    kind = int(rng.integers(6))
    color = random_color(rng)
    x, y = int(rng.integers(w)), int(rng.integers(h))
    size = int(max(4, rng.uniform(0.03, 0.35) * min(h, w)))
    if kind == 0:  # building with a grid of windows, standing on the horizon
        bw, bh = size, int(size * rng.uniform(0.8, 2.5))
        cv2.rectangle(image, (x, horizon - bh), (x + bw, horizon), color, -1)
        win = jitter(rng, (60, 50, 40), 40)
        step = max(4, bw // 5)
        for wx in range(x + step // 2, x + bw - step // 2, step):
            for wy in range(horizon - bh + step // 2, horizon - step // 2, step):
                cv2.rectangle(image, (wx, wy), (wx + step // 2, wy + step // 2), win, -1)
    elif kind == 1:  # tree: trunk and a blob of leaves
        cv2.line(image, (x, y), (x, y - size), (30, 60, 90), max(1, size // 8))
        cv2.circle(image, (x, y - size), max(2, size // 2), jitter(rng, (40, 130, 50), 30), -1, cv2.LINE_AA)
    elif kind == 2:
        cv2.line(image, (x, y), (int(rng.integers(w)), int(rng.integers(h))), color, int(rng.integers(1, 4)), cv2.LINE_AA)
    elif kind == 3:
        cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), color, int(rng.integers(1, 3)))
    elif kind == 4:
        pts = (np.array([x, y]) + rng.integers(-size, size + 1, (int(rng.integers(3, 7)), 2))).astype(np.int32)
        cv2.fillPoly(image, [pts], color, cv2.LINE_AA)
    else:
        text = "".join(chr(c) for c in rng.integers(65, 91, int(rng.integers(2, 6))))
        cv2.putText(image, text, (x, y), int(rng.integers(0, 4)), size / 40, color, max(1, size // 25), cv2.LINE_AA)


def render_occluder(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A foreground pole, bar or bush that hides parts of objects: (patch, mask, x, y)."""
    canvas = Canvas(w, h)
    color = random_color(rng, 20, 200)
    kind = int(rng.integers(3))
    x = float(rng.uniform(0.05, 0.95))
    if kind == 0:
        canvas.line((x, 0.0), (x + rng.uniform(-0.05, 0.05), 1.0), color, rng.uniform(0.015, 0.05) * w)
    elif kind == 1:
        y = float(rng.uniform(0.3, 0.9))
        canvas.line((0.0, y), (1.0, y + rng.uniform(-0.05, 0.05)), color, rng.uniform(0.015, 0.04) * h)
    else:
        y = float(rng.uniform(0.6, 1.0))
        for _ in range(6):
            canvas.circle(x + rng.uniform(-0.08, 0.08), y + rng.uniform(-0.05, 0.05), rng.uniform(0.03, 0.08) * min(h, w),
                          jitter(rng, (40, 120, 40), 30))
    return canvas.image, canvas.mask, 0, 0


@dataclass
class Layer:
    """A patch placed at (x, y) in the frame; `owner` >= 0 is an object index, -2 an occluder."""

    image: np.ndarray
    mask: np.ndarray
    x: int
    y: int
    owner: int


def compose(frame: np.ndarray, layers: list[Layer]) -> np.ndarray:
    """Paint `layers` back to front onto `frame` (in place); returns the per-pixel owner map."""
    h, w = frame.shape[:2]
    owner = np.full((h, w), -1, np.int16)
    for layer in layers:
        ph, pw = layer.mask.shape
        x0, y0, x1, y1 = max(layer.x, 0), max(layer.y, 0), min(layer.x + pw, w), min(layer.y + ph, h)
        if x1 <= x0 or y1 <= y0:
            continue
        m = layer.mask[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x] > 0
        frame[y0:y1, x0:x1][m] = layer.image[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x][m]
        owner[y0:y1, x0:x1][m] = layer.owner
    return owner


def visible_boxes(owner: np.ndarray, layers: list[Layer]) -> dict[int, tuple[np.ndarray, float]]:
    """For each object layer: (tight xyxy box of its visible pixels or None, visible share of it)."""
    h, w = owner.shape
    out = {}
    for layer in layers:
        if layer.owner < 0:
            continue
        ph, pw = layer.mask.shape
        x0, y0, x1, y1 = max(layer.x, 0), max(layer.y, 0), min(layer.x + pw, w), min(layer.y + ph, h)
        total = int(np.count_nonzero(layer.mask))
        if x1 <= x0 or y1 <= y0 or total == 0:
            out[layer.owner] = (None, 0.0)
            continue
        mine = owner[y0:y1, x0:x1] == layer.owner
        cols, rows = np.flatnonzero(mine.any(0)), np.flatnonzero(mine.any(1))
        if len(cols) == 0:
            out[layer.owner] = (None, 0.0)
            continue
        box = np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], np.float32)
        out[layer.owner] = (box, float(np.count_nonzero(mine)) / total)
    return out


def sample_lighting(rng: np.random.Generator) -> dict:
    """Global light: contrast gain, brightness, a gradient across the frame, gamma, color cast."""
    return {"gain": float(rng.uniform(0.45, 1.35)), "bias": float(rng.uniform(-45, 45)),
            "ramp": float(rng.uniform(-0.35, 0.35)), "ramp_angle": float(rng.uniform(0, 2 * np.pi)),
            "gamma": float(rng.uniform(0.7, 1.45)), "cast": rng.uniform(0.9, 1.1, 3).astype(np.float32).tolist(),
            "noise": float(rng.choice([0.0, rng.uniform(1, 10)])), "blur": int(rng.choice([0, 0, 0, 3, 5]))}


def apply_lighting(frame: np.ndarray, light: dict, rng: np.random.Generator, noise: np.ndarray | None = None) -> np.ndarray:
    """Apply `light` and sensor noise to a uint8 BGR frame; returns a new uint8 frame.

    `noise` (unit Gaussian, the frame's shape) is used instead of drawing new noise: drawing it is
    the slowest step, and video frames can reuse a shifted one.
    """
    h, w = frame.shape[:2]
    x = frame.astype(np.float32)
    mean = float(x.mean())
    ux, uy = np.cos(light["ramp_angle"]), np.sin(light["ramp_angle"])
    ramp = 1 + light["ramp"] * ((np.arange(w, dtype=np.float32)[None, :] / w - 0.5) * ux
                                + (np.arange(h, dtype=np.float32)[:, None] / h - 0.5) * uy)
    x = ((x - mean) * light["gain"] + mean + light["bias"]) * ramp[..., None] * np.float32(light["cast"])
    gamma = (255 * (np.arange(256) / 255) ** light["gamma"]).astype(np.uint8)
    out = cv2.LUT(np.clip(x, 0, 255).astype(np.uint8), gamma)
    if light["blur"]:
        out = cv2.GaussianBlur(out, (light["blur"], light["blur"]), 0)
    if light["noise"]:
        noise = rng.standard_normal(out.shape, dtype=np.float32) if noise is None else noise
        out = np.clip(out + noise * np.float32(light["noise"]), 0, 255).astype(np.uint8)
    return out
