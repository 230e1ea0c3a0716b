"""Evaluation protocols: does normalise(identity + attribute) find an image of that pair?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from facearith.arithmetic import compose, label_vectors


class Searcher(Protocol):
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def all_pairs(identities: np.ndarray, attributes: np.ndarray) -> list[tuple[str, str]]:
    """Every (identity, attribute) pair present, sorted: the exhaustive query set."""
    return sorted({(str(i), str(a)) for i, a in zip(identities, attributes, strict=True)})


def seed_pairs(identities: np.ndarray, attributes: np.ndarray, n: int, seed: int) -> list[tuple[str, str]]:
    """The seed's protocol: n pairs drawn at random (with replacement) from those present, with a fixed seed."""
    pairs = all_pairs(identities, attributes)
    rng = np.random.default_rng(seed)
    return [pairs[i] for i in rng.integers(0, len(pairs), size=n)]


def hits(
    ids: np.ndarray, identities: np.ndarray, attributes: np.ndarray, targets: Sequence[tuple[str, str]]
) -> np.ndarray:
    """(Q, k) booleans: whether result j of query q carries the target pair."""
    identities = np.asarray(identities).astype(str)
    attributes = np.asarray(attributes).astype(str)
    want_i = np.array([t[0] for t in targets])[:, None]
    want_a = np.array([t[1] for t in targets])[:, None]
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    return valid & (identities[safe] == want_i) & (attributes[safe] == want_a)


def composition(
    searcher: Searcher,
    features: np.ndarray,
    identities: np.ndarray,
    attributes: np.ndarray,
    pairs: Sequence[tuple[str, str]],
    k: int = 5,
) -> dict[str, float | int]:
    """Query normalise(v(identity) + v(attribute)) for each pair; top-1 and top-k hit rates.

    The label vectors come from `features`, the indexed set whose labels are `identities`/`attributes`.
    """
    id_vecs = label_vectors(features, identities)
    attr_vecs = label_vectors(features, attributes)
    queries = np.stack([compose([id_vecs[i], attr_vecs[a]]) for i, a in pairs])
    ids, _ = searcher.search(queries, k)
    h = hits(ids, identities, attributes, pairs)
    return {"top1": float(h[:, 0].mean()), f"top{k}": float(h.any(axis=1).mean()), "queries": len(pairs)}
