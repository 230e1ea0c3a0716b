"""Evaluation protocols on generic two-label data (identity, attribute).

- composition: query normalise(v(identity) + v(attribute)); a hit when the result is of that pair.
- transfer: from an indexed image of (i, a1), query normalise(f - v(a1) + v(a2)); a hit when the result,
  the query image excluded, is of (i, a2).

Each protocol returns one row per query (what was asked, what came first, whether the top 1 / top k hit),
so that the summary, per-label accuracies and confusion matrices all come from the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facearith.arithmetic import compose, label_vectors
from facearith.search.backends import Searcher


@dataclass(frozen=True)
class Indexed:
    """The searchable side: features, their labels, and a searcher over exactly these rows (id = row)."""

    features: np.ndarray
    identities: np.ndarray
    attributes: np.ndarray
    searcher: Searcher
    # where the label vectors come from: these rows (default), or a mask of them (e.g. only the rows whose pair
    # the network trained on, so that a held-out pair's own images do not shape the query that asks for it)
    vectors_from: np.ndarray | None = None
    # or given outright: (identity vectors, attribute vectors) of images that are not in this index at all, e.g.
    # the training images when only held-out images are searched
    given_vectors: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    def vectors(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if self.given_vectors is not None:
            return self.given_vectors
        rows = slice(None) if self.vectors_from is None else np.asarray(self.vectors_from, dtype=bool)
        feats, ident, attr = self.features[rows], np.asarray(self.identities)[rows], np.asarray(self.attributes)[rows]
        return label_vectors(feats, ident), label_vectors(feats, attr)

    def pairs(self) -> set[tuple[str, str]]:
        return set(all_pairs(self.identities, self.attributes))

    def askable_pairs(self) -> list[tuple[str, str]]:
        """The indexed pairs that can be composed: both labels have a vector (with training images behind it)."""
        id_vecs, attr_vecs = self.vectors()
        return [(i, a) for i, a in all_pairs(self.identities, self.attributes) if i in id_vecs and a in attr_vecs]

    def known_rows(self) -> np.ndarray:
        """Rows whose identity and attribute both have a vector: the images a transfer can start from."""
        id_vecs, attr_vecs = self.vectors()
        pairs = zip(np.asarray(self.identities).astype(str), np.asarray(self.attributes).astype(str), strict=True)
        return np.flatnonzero([i in id_vecs and a in attr_vecs for i, a in pairs])


def all_pairs(identities: np.ndarray, attributes: np.ndarray) -> list[tuple[str, str]]:
    """Every (identity, attribute) pair present, sorted: the exhaustive query set."""
    return sorted({(str(i), str(a)) for i, a in zip(identities, attributes, strict=True)})


def seed_pairs(identities: np.ndarray, attributes: np.ndarray, n: int, seed: int) -> list[tuple[str, str]]:
    """The seed's protocol: n pairs drawn at random (with replacement) from those present, with a fixed seed."""
    pairs = all_pairs(identities, attributes)
    rng = np.random.default_rng(seed)
    return [pairs[i] for i in rng.integers(0, len(pairs), size=n)]


def _records(
    idx: Indexed, queries: np.ndarray, targets: Sequence[tuple[str, str]], depth: int, exclude: Sequence[int] | None
) -> pd.DataFrame:
    """Search `depth` deep, drop each query's own image (`exclude`, -1 for none: it never counts as its own hit),
    and score against the target pairs: `rank` is the 1-based place of the first hit, 0 when none is found."""
    ids, _ = idx.searcher.search(queries, depth + (exclude is not None))
    if exclude is not None:
        kept = np.full((len(ids), depth), -1, dtype=np.int64)
        for q, row in enumerate(ids):
            row = row[row != exclude[q]][:depth]
            kept[q, : len(row)] = row
        ids = kept
    ids = ids[:, :depth]
    ident = np.asarray(idx.identities).astype(str)
    attr = np.asarray(idx.attributes).astype(str)
    want_i = np.array([t[0] for t in targets])[:, None]
    want_a = np.array([t[1] for t in targets])[:, None]
    safe = np.where(ids >= 0, ids, 0)
    hit = (ids >= 0) & (ident[safe] == want_i) & (attr[safe] == want_a)
    first = safe[:, 0]
    return pd.DataFrame(
        {
            "identity": want_i[:, 0],
            "attribute": want_a[:, 0],
            "found_identity": np.where(ids[:, 0] >= 0, ident[first], ""),
            "found_attribute": np.where(ids[:, 0] >= 0, attr[first], ""),
            "top1": hit[:, 0],
            "rank": np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0),
            "first_id": ids[:, 0],
        }
    )


def recognition_records(feats: np.ndarray, labels: np.ndarray, vectors: dict[str, np.ndarray]) -> pd.DataFrame:
    """Each image's label vectors ranked by cosine: `rank` is the 1-based place of its own label (0 when its label
    has no vector). Per axis, this says which half of a composition fails: a pair never trained on can be
    recognised by person and not by expression, and then no query finds it."""
    labels = np.asarray(labels).astype(str)
    if not vectors or len(labels) == 0:
        return _empty()
    names = np.array(sorted(vectors))
    order = np.argsort(-(feats @ np.stack([vectors[n] for n in names]).T), axis=1, kind="stable")
    ranked = names[order]
    hit = ranked == labels[:, None]
    rank = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
    return pd.DataFrame({"label": labels, "found": ranked[:, 0], "top1": hit[:, 0], "rank": rank})


def composition_queries(idx: Indexed, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    id_vecs, attr_vecs = idx.vectors()
    return np.stack([compose([id_vecs[i], attr_vecs[a]]) for i, a in pairs])


def composition_records(idx: Indexed, pairs: Sequence[tuple[str, str]], depth: int) -> pd.DataFrame:
    if not pairs:
        return _empty()
    return _records(idx, composition_queries(idx, pairs), pairs, depth, exclude=None)


@dataclass
class TransferQueries:
    vectors: np.ndarray
    targets: list[tuple[str, str]]
    sources: list[str]  # the query image's own attribute
    exclude: list[int]  # the query image's id in the index, or -1


def transfer_queries(
    idx: Indexed,
    query_features: np.ndarray,
    query_identities: np.ndarray,
    query_attributes: np.ndarray,
    self_ids: Sequence[int] | None = None,
    only_targets: set[tuple[str, str]] | None = None,
) -> TransferQueries:
    """Every query image moved to every other attribute whose pair with its identity is in the index.

    `self_ids[q]`: the query image's own id in the index (excluded from its results), or -1.
    `only_targets`: restrict to these target pairs (the held-out pairs protocol).
    """
    _, attr_vecs = idx.vectors()
    present = idx.pairs()
    tq = TransferQueries(np.zeros((0, idx.features.shape[1]), np.float32), [], [], [])
    vecs = []
    for q, (f, i, a1) in enumerate(zip(query_features, query_identities, query_attributes, strict=True)):
        for a2 in sorted(attr_vecs):
            target = (str(i), a2)
            if a2 == str(a1) or target not in present or (only_targets is not None and target not in only_targets):
                continue
            vecs.append(compose([f, attr_vecs[a2]], [attr_vecs[str(a1)]]))
            tq.targets.append(target)
            tq.sources.append(str(a1))
            tq.exclude.append(-1 if self_ids is None else int(self_ids[q]))
    if vecs:
        tq.vectors = np.stack(vecs)
    return tq


def transfer_records(idx: Indexed, *args, depth: int, **kwargs) -> pd.DataFrame:
    """Transfer hits for the queries `transfer_queries(idx, *args, **kwargs)` builds."""
    tq = transfer_queries(idx, *args, **kwargs)
    if not tq.targets:
        return _empty()
    out = _records(idx, tq.vectors, tq.targets, depth, tq.exclude)
    out.insert(2, "from_attribute", tq.sources)
    return out


def _empty() -> pd.DataFrame:
    cols = ["identity", "attribute", "found_identity", "found_attribute", "top1", "rank", "first_id"]
    kinds = {"top1": bool, "rank": np.int64}
    return pd.DataFrame({c: pd.Series(dtype=kinds.get(c, object)) for c in cols})


def summarize(records: pd.DataFrame, ks: Sequence[int]) -> dict[str, float | int | None]:
    """Recall@K for each K in `ks` (as top1, top5, ...: a hit among the first K results) and the number of
    queries; an empty protocol reports 0 queries and null rates. K beyond the search depth would be wrong."""
    if len(records) == 0:
        return {**{f"top{k}": None for k in ks}, "queries": 0}
    rank = records["rank"].to_numpy()
    return {**{f"top{k}": float(((rank >= 1) & (rank <= k)).mean()) for k in ks}, "queries": len(records)}


def composition(
    searcher: Searcher,
    features: np.ndarray,
    identities: np.ndarray,
    attributes: np.ndarray,
    pairs: Sequence[tuple[str, str]],
    ks: Sequence[int],
) -> dict[str, float | int | None]:
    """Composition hit rates for `pairs` over the indexed `features` (label vectors from them too)."""
    idx = Indexed(features, identities, attributes, searcher)
    return summarize(composition_records(idx, pairs, max(ks)), ks)


def recall(index: Searcher, exact: Searcher, queries: np.ndarray, k: int) -> dict[str, float]:
    """How often the index's first hit is the exact one, and the share of the exact top k that it finds."""
    n_ids, _ = index.search(queries, k)
    e_ids, _ = exact.search(queries, k)
    at1 = float((n_ids[:, 0] == e_ids[:, 0]).mean())
    atk = float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(n_ids, e_ids, strict=True)]))
    return {"recall_at_1": at1, f"recall_at_{k}": atk, "queries": len(queries)}
