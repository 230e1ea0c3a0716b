"""Pictures of queries: a strip of the query and its ranked results, right ones framed green."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from facearith.fsutil import atomic_path


def strip(
    query: np.ndarray | str,
    results: Sequence[tuple[np.ndarray, str, bool]],
    caption: str = "",
    tile: int = 112,
) -> Image.Image:
    """`query`: a grey image, or text naming what was asked; `results`: (grey image, caption, hit) in rank order."""
    pad = 8
    canvas = Image.new("RGB", ((len(results) + 1) * (tile + pad) + pad, tile + 3 * pad + 16), "white")
    draw = ImageDraw.Draw(canvas)
    if isinstance(query, str):
        draw.rectangle([pad, pad, pad + tile, pad + tile], outline="black")
        draw.multiline_text((pad + 6, pad + tile // 2 - 12), query.replace(" ", "\n", 2), fill="black")
    else:
        canvas.paste(Image.fromarray(query).resize((tile, tile)).convert("RGB"), (pad, pad))
    draw.text((pad, tile + 2 * pad), caption, fill="black")
    for j, (img, text, hit) in enumerate(results, start=1):
        x = pad + j * (tile + pad)
        canvas.paste(Image.fromarray(img).resize((tile, tile)).convert("RGB"), (x, pad))
        draw.rectangle([x - 3, pad - 3, x + tile + 2, pad + tile + 2], outline="green" if hit else "red", width=3)
        draw.text((x, tile + 2 * pad), f"{j}. {text}", fill="black")
    return canvas


def stack(strips: Sequence[Image.Image]) -> Image.Image:
    width = max(s.width for s in strips)
    canvas = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        canvas.paste(s, (0, y))
        y += s.height
    return canvas


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
