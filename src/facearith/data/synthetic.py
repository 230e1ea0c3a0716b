"""An embedded face set: procedurally drawn faces, deterministic from a seed, named like JAFFE.

Identity lives in head shape, hair, eye spacing, nose and skin tone; expression in mouth, brows and eye
opening. Each image adds its own nuisance (pose, scale, shift, lighting, noise, background), so that a
network has to learn both axes rather than match pixels.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# JAFFE's expression codes: angry, disgusted, afraid, happy, neutral, sad, surprised
EXPRESSIONS = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")

# mouth curve (+ smile), mouth open, mouth width, brow tilt (+ inner end down), brow lift, eye open
_EXPRESSION_SHAPES: dict[str, tuple[float, float, float, float, float, float]] = {
    "AN": (-0.35, 0.05, 0.85, 0.9, -0.5, 0.75),
    "DI": (-0.7, 0.25, 1.05, 0.45, -0.2, 0.55),
    "FE": (-0.15, 0.55, 0.8, -0.6, 0.8, 1.35),
    "HA": (1.0, 0.3, 1.2, 0.0, 0.15, 0.8),
    "NE": (0.0, 0.0, 0.9, 0.0, 0.0, 1.0),
    "SA": (-0.9, 0.0, 0.8, -0.9, 0.25, 0.8),
    "SU": (0.0, 1.0, 0.6, -0.2, 1.0, 1.45),
}


@dataclass(frozen=True)
class Identity:
    face_w: float  # fractions of the canvas
    face_h: float
    chin: float  # how pointed the jaw is
    skin: int
    hair: int
    hair_style: int
    hair_len: float
    eye_gap: float
    eye_size: float
    eye_y: float
    nose_len: float
    mouth_y: float
    brow_thick: float


def person_codes(n: int) -> list[str]:
    """Two-letter person codes that cannot be mistaken for expression codes."""
    letters = "BCGJLMPRTVWXYZ"
    codes = [a + b for a in letters for b in letters if a != b]
    return codes[:n] if n <= len(codes) else [f"P{i}" for i in range(n)]


def random_identity(rng: np.random.Generator) -> Identity:
    return Identity(
        face_w=rng.uniform(0.50, 0.66),
        face_h=rng.uniform(0.66, 0.80),
        chin=rng.uniform(0.0, 1.0),
        skin=int(rng.uniform(120, 215)),
        hair=int(rng.uniform(10, 100)),
        hair_style=int(rng.integers(0, 3)),
        hair_len=rng.uniform(0.1, 0.45),
        eye_gap=rng.uniform(0.27, 0.42),
        eye_size=rng.uniform(0.09, 0.14),
        eye_y=rng.uniform(0.36, 0.46),
        nose_len=rng.uniform(0.10, 0.22),
        mouth_y=rng.uniform(0.68, 0.78),
        brow_thick=rng.uniform(0.02, 0.05),
    )


def draw_face(
    ident: Identity, expression: str, rng: np.random.Generator, size: int = 128, nuisance: float = 1.0
) -> Image.Image:
    """One grey face of `ident` showing `expression`, with this draw's own nuisance; `nuisance` scales every
    nuisance range (background, pose, scale, shift, blur, lighting, noise): 0 draws aligned, clean faces."""
    s = 4 * size  # draw large, then downsample, for smooth edges
    curve, open_, width, tilt, lift, eye_open = _EXPRESSION_SHAPES[expression]
    k = rng.uniform(0.85, 1.15)  # how strongly this image shows the expression
    curve, open_, tilt, lift = curve * k, open_ * k, tilt * k, lift * k
    eye_open = 1 + (eye_open - 1) * k
    bg = int(130 + rng.uniform(-70, 70) * nuisance)
    img = Image.new("L", (s, s), bg)
    d = ImageDraw.Draw(img)
    cx, cy = s / 2, s / 2
    fw, fh = ident.face_w * s, ident.face_h * s
    top, bottom = cy - fh / 2, cy + fh / 2
    # hair behind the head
    if ident.hair_style == 1:  # long
        d.rectangle([cx - fw * 0.58, cy - fh * 0.45, cx + fw * 0.58, cy + fh * ident.hair_len], fill=ident.hair)
    d.ellipse([cx - fw * 0.55, top - fh * 0.06, cx + fw * 0.55, top + fh * 0.55], fill=ident.hair)
    # head: an ellipse, jaw narrowed by a polygon for pointed chins
    d.ellipse([cx - fw / 2, top, cx + fw / 2, bottom], fill=ident.skin)
    if ident.chin > 0.5:
        cut = (ident.chin - 0.5) * fw * 0.5
        d.polygon([(cx - fw / 2, cy + fh * 0.1), (cx - fw / 2 + cut, bottom), (cx - fw / 2, bottom)], fill=bg)
        d.polygon([(cx + fw / 2, cy + fh * 0.1), (cx + fw / 2 - cut, bottom), (cx + fw / 2, bottom)], fill=bg)
    if ident.hair_style == 2:  # fringe
        d.chord([cx - fw * 0.5, top, cx + fw * 0.5, top + fh * 0.5], 180, 360, fill=ident.hair)
        d.rectangle([cx - fw * 0.45, top + fh * 0.2, cx + fw * 0.45, top + fh * 0.26], fill=ident.hair)
    else:
        d.chord([cx - fw * 0.5, top, cx + fw * 0.5, top + fh * 0.35], 180, 360, fill=ident.hair)
    dark = max(0, ident.skin - 110)
    # eyes
    ey = top + fh * ident.eye_y
    er = ident.eye_size * fw
    for side in (-1, 1):
        ex = cx + side * ident.eye_gap * fw
        h = er * 0.55 * eye_open
        d.ellipse([ex - er, ey - h, ex + er, ey + h], fill=235)
        d.ellipse([ex - er * 0.45, ey - min(h, er * 0.45), ex + er * 0.45, ey + min(h, er * 0.45)], fill=25)
        # brows: the inner end moves with tilt, both with lift
        by = ey - er * (1.6 + 1.4 * lift)
        inner = (ex - side * er * 1.1, by + tilt * er * 1.6)
        outer = (ex + side * er * 1.3, by - tilt * er * 0.5)
        d.line([inner, outer], fill=dark, width=max(2, int(ident.brow_thick * fw)))
    # nose
    ny = ey + fh * ident.nose_len
    d.line([(cx, ey + er * 0.5), (cx - fw * 0.04, ny), (cx + fw * 0.03, ny)], fill=dark, width=max(2, int(0.012 * s)))
    # mouth: a quadratic curve, opened into a dark filled shape
    my = top + fh * ident.mouth_y
    mw = fw * 0.22 * width
    xs = np.linspace(-1, 1, 25)
    # a smile (curve > 0) lifts the corners: the middle sits lower than the ends (image y grows downwards)
    upper = [(cx + x * mw, my + curve * fh * 0.1 * (1 - x * x) - open_ * fh * 0.02) for x in xs]
    lower = [(cx + x * mw, my + curve * fh * 0.1 * (1 - x * x) + open_ * fh * 0.12 * (1 - x * x)) for x in xs]
    if open_ > 0.12:
        d.polygon(upper + lower[::-1], fill=30)
    d.line(upper, fill=max(0, ident.skin - 90), width=max(2, int(0.012 * s)))
    # nuisance: pose, scale, shift, then lighting and noise
    n = nuisance
    angle = rng.uniform(-10, 10) * n
    scale = 1 + rng.uniform(-0.12, 0.1) * n
    shift = rng.uniform(-0.06, 0.06, size=2) * s * n
    img = img.rotate(angle, resample=Image.BILINEAR, fillcolor=bg)
    a = 1 / scale
    img = img.transform(
        (s, s),
        Image.AFFINE,
        (a, 0, s / 2 - a * s / 2 - shift[0], 0, a, s / 2 - a * s / 2 - shift[1]),
        resample=Image.BILINEAR,
        fillcolor=bg,
    )
    img = img.filter(ImageFilter.GaussianBlur(0.5 + rng.uniform(0, 2) * n)).resize((size, size), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    gain = 1 + rng.uniform(-0.25, 0.2) * n
    arr = arr * gain + rng.uniform(-40, 40) * n * (np.cos(theta) * xx + np.sin(theta) * yy)
    arr = arr + rng.normal(0, rng.uniform(3, 12) * n, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def generate(
    dest: str | os.PathLike,
    persons: int = 10,
    images_per_pair: int = 3,
    size: int = 128,
    seed: int = 0,
    nuisance: float = 1.0,
) -> list[str]:
    """Write persons x 7 expressions x images_per_pair TIFFs named like JAFFE (`PERSON.EXPRn.ID.tiff`)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = np.random.default_rng(seed)
    names = []
    image_id = 1
    for person in person_codes(persons):
        ident = random_identity(root)
        for expression in EXPRESSIONS:
            for repeat in range(1, images_per_pair + 1):
                rng = np.random.default_rng([seed, image_id])
                name = f"{person}.{expression}{repeat}.{image_id}.tiff"
                draw_face(ident, expression, rng, size, nuisance).save(dest / name)
                names.append(name)
                image_id += 1
    return names
