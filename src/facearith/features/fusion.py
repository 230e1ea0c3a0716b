"""The indexed features' fuse weights (the network's share beside PCA + LDA's, per axis), chosen per data set by a
rule that sees only the training images (features.fuse: inner), or fixed by params (fixed).

The rule is an inner hold-out that mirrors the pipeline's own split: part of the training images is held out as
prepare.split holds out (one image per pair, or a fold of the pairs); a network of the same params is trained on
the rest, and PCA + LDA fitted on it; the inner held-out images' composition and transfer top-1 are measured for
every pair of weights on a grid (features.fuse_steps); the best, after averaging each grid point with its
neighbours (a few queries' luck should not pick a lone peak), is used with the final network, trained on all the
training images. On the training images themselves the network would score 1.0 by memorising them, so they
cannot choose. It costs a second training on fewer images (stage fuse), checkpointed as the train stage's is, so
that an interrupted run resumes there; stage train then continues that inner network (final.start: inner)
rather than training the final one from scratch, which earns most of that cost back.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

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
from facearith.training import checkpoints, members, network
from facearith.training.network import Ensemble, FaceNet

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


def inner_checkpoint(path: str | os.PathLike) -> Path | None:
    """The inner network's checkpoint, `<stem>.fuse<suffix>` beside the train stage's (checkpoint.path; "": none);
    an ensemble's other members write theirs beside it, as training's do."""
    if not path:
        return None
    path = Path(path)
    return path.with_name(f"{path.stem}.fuse{path.suffix}")


def fold_checkpoint(path: Path | None, fold: int) -> Path | None:
    """Inner fold k's checkpoint: fold 0 writes `path` itself, fold k a sibling `<stem>.fold<k><suffix>`; each is
    kept until the stage ends, so that an interrupted stage resumes at the fold it was training."""
    if path is None or fold == 0:
        return path
    return path.with_name(f"{path.stem}.fold{fold}{path.suffix}")


def remove_checkpoints(path: Path | None, folds: int, n_members: int) -> None:
    """Every fold's and member's inner checkpoint, once stage fuse has finished."""
    for k in range(folds):
        checkpoints.remove(fold_checkpoint(path, k), n_members)


def mean_scores(folds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each pair of weights' scores averaged over the inner folds (one fold: its own scores)."""
    return {k: {m: float(np.mean([f[k][m] for f in folds])) for m in folds[0][k]} for k in folds[0]}


def _inner_fold(
    rows: pd.DataFrame,
    images: list[np.ndarray],
    params: Params,
    device: torch.device,
    fold: int,
    checkpoint: Path | None,
    fingerprint: str,
) -> tuple[FaceNet | Ensemble, dict[str, dict[str, float]], np.ndarray, float]:
    """Inner fold `fold`: its network, trained on the rest of the training rows, every weight pair's scores on
    the fold's held-out rows, which rows trained, and the seconds a resumed run had spent before."""
    pp, fp, cp = params.prepare, params.features, params.checkpoint
    trained = inner_split(rows, pp.split, pp.seed, pp.folds, fold)
    resuming: dict[str, object] = {}
    if checkpoint is not None:
        mine = hashlib.sha256(fingerprint.encode() + np.packbits(trained).tobytes()).hexdigest()
        resuming = {"checkpoint": checkpoint, "resume": cp.resume, "fingerprint": mine}
        resuming["checkpoint_every_s"] = cp.every_s
    net, result = members.train_selected(rows.assign(selected=trained), params.model, params.train, device, **resuming)
    earlier = sum(result.epoch_seconds[: result.epochs_resumed])  # a resumed run's seconds before the resume
    net_features = extract(net, images, params.train.image_size, fp.batch_size, device)
    picked = [images[i] for i in np.flatnonzero(trained)]
    lin, _ = linear.fit_images(picked, rows.identity[trained], rows.attribute[trained], params.linear.size)
    ident, attr = rows.identity.to_numpy(), rows.attribute.to_numpy()
    embedding, n_members = layout(net)
    scores = score_weights(
        net_features,
        lin.embed_axes(images),
        ident,
        attr,
        trained,
        fp.fuse_steps,
        embedding,
        n_members,
        also=fp.fuse_weight.pair(),
    )
    return net, scores, trained, earlier


def choose_weights(
    table: pd.DataFrame, params: Params, device: torch.device, checkpoint: Path | None = None, fingerprint: str = ""
) -> tuple[Choice, FaceNet | Ensemble]:
    """The inner rule on the table's training rows (`selected`), and only those: no other row's image is opened;
    the weights, and inner fold 0's network (the one stage train continues). The scores are averaged over
    features.fuse_folds inner folds, each a network of its own. With `checkpoint`, each fold's training is
    checkpointed (`fold_checkpoint`) and resumed as params.checkpoint says, when it is of the same `fingerprint`
    (the train stage's: params, table, code) and the same inner split."""
    rows = table[table["selected"].to_numpy()].reset_index(drop=True)
    fp = params.features
    start = time.perf_counter()
    images = load_images(rows.path.tolist())
    kept, per_fold, earlier = None, [], 0.0
    for k in range(fp.fuse_folds):
        net, scores, trained, before = _inner_fold(
            rows, images, params, device, k, fold_checkpoint(checkpoint, k), fingerprint
        )
        kept = net if k == 0 else kept  # the others' networks only score: not kept
        per_fold.append((scores, trained))
        earlier += before
    scores = mean_scores([s for s, _ in per_fold])
    w_id, w_attr = choose(scores, fp.fuse_steps)
    fixed = fp.fuse_weight.pair()
    first = per_fold[0][1]
    inner: dict[str, object] = {
        "fixed": {"identity": fixed[0], "attribute": fixed[1]},  # params' features.fuse_weight, scored to compare
        "split": "pairs" if params.prepare.split == "pairs" else "images",
        "folds": fp.fuse_folds,
        "trained": int(first.sum()),  # fold 0's, whose network stage train continues
        "heldout": int((~first).sum()),
        "seconds": round(time.perf_counter() - start + earlier, 2),
    }
    if fp.fuse_folds > 1:  # what each fold alone would have chosen, and on how many images (not in the metrics)
        inner["per_fold"] = [
            {"trained": int(t.sum()), "heldout": int((~t).sum()), "alone": key(*choose(s, fp.fuse_steps))}
            for s, t in per_fold
        ]
    return Choice(w_id, w_attr, "inner", scores, inner), kept


def decide(
    table: pd.DataFrame, params: Params, device: torch.device, **checkpointing: object
) -> tuple[Choice, FaceNet | Ensemble | None]:
    """features.fuse: the inner rule (`checkpointing`: choose_weights' checkpoint and fingerprint) and its inner
    network, or params' fixed weights and no network."""
    if params.features.fuse == "fixed":
        return Choice(*params.features.fuse_weight.pair(), "fixed"), None
    return choose_weights(table, params, device, **checkpointing)


def save_inner(net: FaceNet | Ensemble | None, path: str | os.PathLike, table: pd.DataFrame, params: Params) -> None:
    """Stage fuse's inner network, for stage train to continue (final.start: inner); with fixed weights, which
    train none, a file that says so."""
    if net is None:
        network.save_absent(path, "features.fuse is fixed, so stage fuse trained no inner network")
    else:
        network.save(net, path, params.model, *members.model_extra(table, params.train))
