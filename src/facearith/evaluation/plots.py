"""The evaluate stage's pictures: per-label accuracy, the expressions' confusion under transfer, and a gallery of
queries with their results."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from facearith.evaluation.protocols import Indexed, all_pairs, composition_queries, transfer_queries
from facearith.evaluation.run import per_label
from facearith.fsutil import atomic_path
from facearith.pictures import bar_chart, confusion_chart, save_figure, save_png, stack, strip


def gallery(table, images: Sequence[np.ndarray], feats: np.ndarray, searcher, k: int = 5, n: int = 3) -> Image.Image:
    """A few composition queries and a few transfers over the indexed rows, each followed by its top k; hits
    framed green."""
    sel = table["selected"].to_numpy()
    rows = table[sel].reset_index(drop=True)
    sel_images = [images[i] for i in np.flatnonzero(sel)]
    P, E = rows.identity.to_numpy(), rows.attribute.to_numpy()
    idx = Indexed(feats[sel], P, E, searcher)
    rng = np.random.default_rng(0)
    strips = []
    pairs = all_pairs(P, E)
    for q, (p, e) in zip(composition_queries(idx, pairs), pairs, strict=True):
        if len(strips) == n:
            break
        ids, _ = searcher.search(q[None], k)
        tiles = [(sel_images[i], f"{P[i]} {E[i]}", (P[i], E[i]) == (p, e)) for i in ids[0]]
        strips.append(strip(f"{p} + {e}", tiles, "composition"))
    for qi in rng.choice(len(rows), size=min(n, len(rows)), replace=False):
        target = next(a for a in sorted(set(E)) if a != E[qi])
        tq = transfer_queries(idx, feats[sel][[qi]], P[[qi]], E[[qi]], [qi], only_targets={(P[qi], target)})
        if not tq.targets:
            continue
        ids, _ = searcher.search(tq.vectors, k + 1)
        found = [i for i in ids[0] if i != qi][:k]
        tiles = [(sel_images[i], f"{P[i]} {E[i]}", (P[i], E[i]) == (P[qi], target)) for i in found]
        strips.append(strip(sel_images[qi], tiles, f"{P[qi]} {E[qi]} -> {target}"))
    return stack(strips)


def save_evaluation_plots(plots: str | os.PathLike, records: dict, gallery_image: Image.Image) -> None:
    """plots/: per-label accuracy (CSV for DVC's Vega plots, PNG for offline), the expressions' confusion
    under transfer, and the gallery."""
    plots = Path(plots)
    for label, per in per_label(records).items():
        _save_csv(per, plots / f"per_{label}.csv")
        series = {"composition": per.composition_top1.tolist(), "transfer": per.transfer_top1.tolist()}
        chart = bar_chart(per[label].tolist(), series, f"Composition and transfer top-1 per {label}", "top-1")
        save_figure(chart, plots / f"per_{label}.png")
    tran = records["transfer"]
    _save_csv(
        tran[["attribute", "found_attribute"]].rename(columns={"attribute": "target"}), plots / "transfer_confusion.csv"
    )
    chart = confusion_chart(
        tran.attribute.tolist(),
        tran.found_attribute.tolist(),
        "Expression confusion under transfer",
        "expression of the first result",
        "target expression",
    )
    save_figure(chart, plots / "transfer_confusion.png")
    save_png(gallery_image, plots / "gallery.png")


def _save_csv(frame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
