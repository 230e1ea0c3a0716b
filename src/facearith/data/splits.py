"""Which images train and which are held out (params.yaml's prepare.split): images, pairs, the seed's choice, all."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from facearith.config import PrepareParams
from facearith.data.labels import build_table
from facearith.errors import ConfigError


def prepare_table(raw_dir: str | os.PathLike, p: PrepareParams) -> tuple[pd.DataFrame, list[str]]:
    """The labelled table of `raw_dir` with the `selected` (training and indexed) rows, and the skipped names."""
    table, skipped = build_table(raw_dir, p.pattern)
    table["selected"] = split(table, p.split, p.seed, p.folds, p.fold)
    return table, skipped


def select_one_per_pair(table: pd.DataFrame) -> np.ndarray:
    """The seed's choice: one image per (identity, attribute) pair, the lowest repeat, then the lowest id."""
    order = table.sort_values(["identity", "attribute", "repeat", "image_id"])
    first = order.groupby(["identity", "attribute"], sort=False).head(1).index
    return table.index.isin(first)


def fold_of_pairs(pairs: list[tuple[str, str]], folds: int, seed: int) -> dict[tuple[str, str], int]:
    """Each pair in exactly one of `folds` folds, sizes differing by at most one, drawn with `seed`."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    return {pairs[j]: i % folds for i, j in enumerate(order)}


def split(table: pd.DataFrame, mode: str, seed: int = 0, folds: int = 5, fold: int = 0) -> np.ndarray:
    """Which rows train (True) and which are held out (False); see params.yaml's prepare.split.

    pairs: the (identity, attribute) pairs fall into `folds` seeded folds; every image of fold `fold`'s pairs
    is held out (zero-shot: the network never sees the pair it is asked for)."""
    if mode == "seed":
        return select_one_per_pair(table)
    if mode == "all":
        return np.ones(len(table), dtype=bool)
    if mode == "pairs":
        pairs = sorted({(str(i), str(a)) for i, a in zip(table.identity, table.attribute, strict=True)})
        if not 2 <= folds <= len(pairs):
            raise ConfigError(f"prepare.folds is {folds}; it must be between 2 and the number of pairs ({len(pairs)})")
        if not 0 <= fold < folds:
            raise ConfigError(f"prepare.fold is {fold}; with prepare.folds {folds} it must be 0 to {folds - 1}")
        held = {p for p, f in fold_of_pairs(pairs, folds, seed).items() if f == fold}
        return np.array([(str(i), str(a)) not in held for i, a in zip(table.identity, table.attribute, strict=True)])
    if mode != "images":
        raise ValueError(f"unknown split {mode!r}")
    rng = np.random.default_rng(seed)
    train = np.ones(len(table), dtype=bool)
    # pairs in sorted order, rows by (repeat, image id): the draw depends on the seed and the labels only
    order = table.sort_values(["identity", "attribute", "repeat", "image_id"])
    for _, rows in order.groupby(["identity", "attribute"], sort=True):
        if len(rows) >= 2:
            train[table.index.get_loc(rows.index[rng.integers(len(rows))])] = False
    return train


def inner_split(table: pd.DataFrame, mode: str, seed: int, folds: int, fold: int = 0) -> np.ndarray:
    """Among training rows only: which train an inner model (True) and which it is scored on, held out as
    `mode` (prepare.split) holds out: fold `fold` of the pairs for `pairs`, else one image of each pair, drawn
    with `seed + fold` (features.fuse_folds: inner fold k, k = 0 the one a single fold uses)."""
    n_pairs = len({(str(i), str(a)) for i, a in zip(table.identity, table.attribute, strict=True)})
    if mode == "pairs":
        n_folds = min(folds, n_pairs)
        if fold >= max(n_folds, 1):
            raise ConfigError(
                f"params: 'features.fuse_folds' asks for inner fold {fold + 1}, but the {len(table)} training images "
                f"fall into {n_folds} folds of pairs (prepare.folds, at most their {n_pairs} pairs); "
                f"set features.fuse_folds to at most {n_folds}"
            )
        mask = split(table, "pairs", seed, n_folds, fold) if n_pairs >= 2 else np.ones(len(table), bool)
    else:
        mask = split(table, "images", seed + fold)
    if mask.all() or not mask.any():
        short = "fewer than two (identity, attribute) pairs" if mode == "pairs" else "no pair with a second image"
        raise ConfigError(
            f"features.fuse 'inner' holds out part of the {len(table)} training images to choose the fuse weights, "
            f"but with prepare.split '{mode}' they have {short} to hold out; set features.fuse to 'fixed' "
            "(features.fuse_weight) and final.start to 'scratch'"
        )
    return mask
