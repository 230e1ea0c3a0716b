"""The indexed features' fuse weights (the network's share beside PCA + LDA's, per axis), chosen per data set by a
rule that sees only the training images (features.fuse: inner), or fixed by params (fixed).

The rule is an inner hold-out that mirrors the pipeline's own split: part of the training images is held out as
prepare.split holds out (one image per pair, or a fold of the pairs); a network of the same params is trained on
the rest, and PCA + LDA fitted on it; the inner held-out images' composition and transfer top-1 are measured for
every pair of weights on a grid (features.fuse_steps); the best, after averaging each grid point with its
neighbours (a few queries' luck should not pick a lone peak), is used with the final network, trained on all the
training images. On the training images themselves the network would score 1.0 by memorising them, so they
cannot choose. It costs a second training on fewer images (stage fuse).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from facearith.config import Params
from facearith.data.images import load_images
from facearith.data.splits import inner_split
from facearith.evaluation.protocols import summarize
from facearith.evaluation.registry import PROTOCOLS, Scene, run
from facearith.features import linear
from facearith.features.choice import Choice, key
from facearith.features.extract import extract, fused, layout
from facearith.search.exact import ExactSearcher
from facearith.training import members

# what the weights are scored on: the inner held-out images' protocols, each top-1, weighted alike
SCORED = ("heldout_images.composition", "heldout_images.transfer")


def weight_grid(steps: int) -> list[float]:
    return [round(i / steps, 6) for i in range(steps + 1)]


def score_weights(
    network: np.ndarray,
    linear_axes: tuple[np.ndarray, np.ndarray],
    identities: np.ndarray,
    attributes: np.ndarray,
    trained: np.ndarray,
    steps: int,
    embedding: str,
    n_members: int,
    also: tuple[float, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Composition and transfer top-1 on the rows not `trained` (label vectors from the `trained` rows), searched
    exactly among themselves as the evaluate stage's held-out protocols are, for every pair of weights on the grid
    (the seed's embedding has no halves: one weight for both axes), and for `also` (params' fixed weights, to
    compare)."""
    grid = weight_grid(steps)
    pairs = [(a, b) for a in grid for b in grid] if embedding == "split" else [(a, a) for a in grid]
    if also is not None and also not in pairs and (embedding == "split" or also[0] == also[1]):
        pairs.append(also)
    out = {}
    for w_id, w_attr in pairs:
        feats = fused(network, linear_axes, (w_id, w_attr), embedding, n_members)
        scene = Scene(feats, identities, attributes, trained, 1, ExactSearcher(feats))
        records = run(scene, {name: PROTOCOLS[name] for name in SCORED})
        tops = {name.split(".")[-1]: summarize(records[name], (1,))["top1"] or 0.0 for name in SCORED}
        out[key(w_id, w_attr)] = {**tops, "score": float(np.mean(list(tops.values())))}
    return out


def choose(scores: dict[str, dict[str, float]], steps: int) -> tuple[float, float]:
    """The weights whose score, averaged with its grid neighbours' (those tried), is best; ties go to the better
    score of its own, then to the weights nearest the middle (0.5, 0.5)."""
    grid = weight_grid(steps)
    tried = {(a, b): s["score"] for k, s in scores.items() for a, b in [map(float, k.split(","))]}
    on_grid = [w for w in tried if w[0] in grid and w[1] in grid]

    def rank(w: tuple[float, float]) -> tuple[float, float, float]:
        i, j = grid.index(w[0]), grid.index(w[1])
        near = [
            tried[(grid[x], grid[y])]
            for x in range(max(i - 1, 0), min(i + 2, len(grid)))
            for y in range(max(j - 1, 0), min(j + 2, len(grid)))
            if (grid[x], grid[y]) in tried
        ]
        return round(float(np.mean(near)), 9), tried[w], -abs(w[0] - 0.5) - abs(w[1] - 0.5)

    return max(on_grid, key=rank)


def choose_weights(table: pd.DataFrame, params: Params, device: torch.device) -> Choice:
    """The inner rule on the table's training rows (`selected`), and only those: no other row's image is opened."""
    rows = table[table["selected"].to_numpy()].reset_index(drop=True)
    pp, fp = params.prepare, params.features
    trained = inner_split(rows, pp.split, pp.seed, pp.folds)
    start = time.perf_counter()
    net, _ = members.train_selected(rows.assign(selected=trained), params.model, params.train, device)
    images = load_images(rows.path.tolist())
    network = extract(net, images, params.train.image_size, fp.batch_size, device)
    picked = [images[i] for i in np.flatnonzero(trained)]
    lin, _ = linear.fit_images(picked, rows.identity[trained], rows.attribute[trained], params.linear.size)
    ident, attr = rows.identity.to_numpy(), rows.attribute.to_numpy()
    embedding, n_members = layout(net)
    fixed = fp.fuse_weight.pair()
    scores = score_weights(
        network, lin.embed_axes(images), ident, attr, trained, fp.fuse_steps, embedding, n_members, also=fixed
    )
    w_id, w_attr = choose(scores, fp.fuse_steps)
    inner = {
        "fixed": {"identity": fixed[0], "attribute": fixed[1]},  # params' features.fuse_weight, scored to compare
        "split": "pairs" if pp.split == "pairs" else "images",
        "trained": int(trained.sum()),
        "heldout": int((~trained).sum()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return Choice(w_id, w_attr, "inner", scores, inner)


def decide(table: pd.DataFrame, params: Params, device: torch.device) -> Choice:
    """features.fuse: the inner rule, or params' fixed weights."""
    if params.features.fuse == "fixed":
        return Choice(*params.features.fuse_weight.pair(), "fixed")
    return choose_weights(table, params, device)
