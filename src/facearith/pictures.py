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


# Charts as PNG beside the data DVC renders with Vega: `dvc plots show` loads Vega from the network, so offline
# only images render there. matplotlib's object API (no pyplot): no global figure state, no display needed.
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_figure(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def line_chart(y: Sequence[float], title: str, xlabel: str, ylabel: str):
    fig = _figure(6, 3.5)
    ax = fig.add_subplot()
    ax.plot(range(len(y)), y, color="tab:blue")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, xlabel: str):
    """Horizontal bars, one group per label, one bar per series (e.g. composition and transfer top-1)."""
    fig = _figure(6, 0.6 + 0.35 * len(labels) * max(1, len(series)) ** 0.5)
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(series))
    pos = np.arange(len(labels))
    for j, (name, values) in enumerate(series.items()):
        ax.barh(pos + j * height, values, height=height, label=name)
    ax.set_yticks(pos + height * (len(series) - 1) / 2, labels=list(labels))
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, xlim=(0, 1))
    ax.legend(loc="lower right", fontsize="small")
    return fig


def confusion_chart(target: Sequence[str], found: Sequence[str], title: str, xlabel: str, ylabel: str):
    """Counts of (target, found) as a matrix; the diagonal is right."""
    names = sorted(set(target) | (set(found) - {""}))
    where = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=int)
    for t, f in zip(target, found, strict=True):
        if f in where:
            counts[where[t], where[f]] += 1
    fig = _figure(1.2 + 0.55 * len(names), 1.0 + 0.5 * len(names))
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(names)), labels=names)
    ax.set_yticks(range(len(names)), labels=names)
    for (i, j), c in np.ndenumerate(counts):
        if c:
            ax.text(j, i, str(c), ha="center", va="center", color="white" if c > counts.max() / 2 else "black")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig
