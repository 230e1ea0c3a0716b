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
from typing import Protocol

import numpy as np
import pandas as pd

from facearith.arithmetic import compose, label_vectors


class Searcher(Protocol):
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


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

    def vectors(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        rows = slice(None) if self.vectors_from is None else np.asarray(self.vectors_from, dtype=bool)
        feats, ident, attr = self.features[rows], np.asarray(self.identities)[rows], np.asarray(self.attributes)[rows]
        return label_vectors(feats, ident), label_vectors(feats, attr)

    def pairs(self) -> set[tuple[str, str]]:
        return set(all_pairs(self.identities, self.attributes))


def all_pairs(identities: np.ndarray, attributes: np.ndarray) -> list[tuple[str, str]]:
    """Every (identity, attribute) pair present, sorted: the exhaustive query set."""
    return sorted({(str(i), str(a)) for i, a in zip(identities, attributes, strict=True)})


def seed_pairs(identities: np.ndarray, attributes: np.ndarray, n: int, seed: int) -> list[tuple[str, str]]:
    """The seed's protocol: n pairs drawn at random (with replacement) from those present, with a fixed seed."""
    pairs = all_pairs(identities, attributes)
    rng = np.random.default_rng(seed)
    return [pairs[i] for i in rng.integers(0, len(pairs), size=n)]


def _records(
    idx: Indexed, queries: np.ndarray, targets: Sequence[tuple[str, str]], k: int, exclude: Sequence[int] | None
) -> pd.DataFrame:
    """Search, drop each query's own image (`exclude`, -1 for none), and score against the target pairs."""
    ids, _ = idx.searcher.search(queries, k + (exclude is not None))
    if exclude is not None:
        kept = np.full((len(ids), k), -1, dtype=np.int64)
        for q, row in enumerate(ids):
            row = row[row != exclude[q]][:k]
            kept[q, : len(row)] = row
        ids = kept
    ids = ids[:, :k]
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
            "topk": hit.any(axis=1),
            "first_id": ids[:, 0],
        }
    )


def composition_queries(idx: Indexed, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    id_vecs, attr_vecs = idx.vectors()
    return np.stack([compose([id_vecs[i], attr_vecs[a]]) for i, a in pairs])


def composition_records(idx: Indexed, pairs: Sequence[tuple[str, str]], k: int = 5) -> pd.DataFrame:
    return _records(idx, composition_queries(idx, pairs), pairs, k, exclude=None)


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


def transfer_records(idx: Indexed, *args, k: int = 5, **kwargs) -> pd.DataFrame:
    """Transfer hits for the queries `transfer_queries(idx, *args, **kwargs)` builds."""
    tq = transfer_queries(idx, *args, **kwargs)
    if not tq.targets:
        return _empty()
    out = _records(idx, tq.vectors, tq.targets, k, tq.exclude)
    out.insert(2, "from_attribute", tq.sources)
    return out


def _empty() -> pd.DataFrame:
    cols = ["identity", "attribute", "found_identity", "found_attribute", "top1", "topk", "first_id"]
    return pd.DataFrame({c: pd.Series(dtype=bool if c in ("top1", "topk") else object) for c in cols})


def summarize(records: pd.DataFrame, k: int) -> dict[str, float | int]:
    """top1, top{k} and the number of queries; an empty protocol reports 0 queries and null rates."""
    if len(records) == 0:
        return {"top1": None, f"top{k}": None, "queries": 0}
    return {"top1": float(records.top1.mean()), f"top{k}": float(records.topk.mean()), "queries": len(records)}


def composition(
    searcher: Searcher,
    features: np.ndarray,
    identities: np.ndarray,
    attributes: np.ndarray,
    pairs: Sequence[tuple[str, str]],
    k: int = 5,
) -> dict[str, float | int]:
    """Composition hit rates for `pairs` over the indexed `features` (label vectors from them too)."""
    return summarize(composition_records(Indexed(features, identities, attributes, searcher), pairs, k), k)


def recall(ngt: Searcher, exact: Searcher, queries: np.ndarray, k: int = 10) -> dict[str, float]:
    """How often NGT's first hit is the exact one, and the share of the exact top k that NGT finds."""
    n_ids, _ = ngt.search(queries, k)
    e_ids, _ = exact.search(queries, k)
    at1 = float((n_ids[:, 0] == e_ids[:, 0]).mean())
    atk = float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(n_ids, e_ids, strict=True)]))
    return {"recall_at_1": at1, f"recall_at_{k}": atk, "queries": len(queries)}


# ---------------------------------------------------------------- the evaluate stage's protocols, all together


def protocols(feats: np.ndarray, table: pd.DataFrame, sel: np.ndarray, k: int) -> dict:
    """Composition and transfer on the selected rows, and on the held-out rows when there are any (exact search)."""
    from facearith.index import ExactSearcher

    P, E = table.identity.to_numpy(), table.attribute.to_numpy()
    idx = Indexed(feats[sel], P[sel], E[sel], ExactSearcher(feats[sel]))
    n = int(sel.sum())
    out = {
        "composition": composition_records(idx, all_pairs(P[sel], E[sel]), k),
        "transfer": transfer_records(idx, feats[sel], P[sel], E[sel], np.arange(n), k=k),
    }
    held = ~sel
    if held.any():
        hidx = Indexed(feats[held], P[held], E[held], ExactSearcher(feats[held]))
        out["heldout_images.composition"] = composition_records(hidx, all_pairs(P[held], E[held]), k)
        out["heldout_images.transfer"] = transfer_records(
            hidx, feats[held], P[held], E[held], np.arange(int(held.sum())), k=k
        )
    return out


def nest(records: dict[str, pd.DataFrame], k: int) -> dict:
    """{'a.b': records} to {'a': {'b': summary}}, the shape of metrics/eval.json."""
    out: dict = {}
    for key, rec in records.items():
        node = out
        *head, last = key.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = summarize(rec, k)
    return out


@dataclass
class Evaluation:
    metrics: dict
    records: dict[str, pd.DataFrame]  # the trained network's, per protocol


def evaluate_all(
    feats: np.ndarray,
    table: pd.DataFrame,
    ngt: Searcher,
    baselines: dict[str, np.ndarray],
    k: int,
    seed_queries: int,
    seed: int,
) -> Evaluation:
    """Every protocol on the trained features, the seed's protocol, the gallery protocols through `ngt` (an
    index of every image), NGT against exact search, and every protocol on each baseline's features."""
    from facearith.index import ExactSearcher

    sel = table["selected"].to_numpy()
    P, E = table.identity.to_numpy()[sel], table.attribute.to_numpy()[sel]
    trained = protocols(feats, table, sel, k)
    trained.update(gallery_protocols(feats, table, sel, k, ngt))
    metrics = nest(trained, k)
    chosen = composition(ExactSearcher(feats[sel]), feats[sel], P, E, seed_pairs(P, E, seed_queries, seed), 1)
    metrics["composition_seed"] = {"accuracy": chosen["top1"], "queries": chosen["queries"]}
    everything = Indexed(feats, table.identity.to_numpy(), table.attribute.to_numpy(), ngt, vectors_from=sel)
    queries = np.concatenate(
        [composition_queries(everything, all_pairs(P, E)), transfer_queries(everything, feats[sel], P, E).vectors]
    )
    metrics["ngt"] = recall(ngt, ExactSearcher(feats), queries, 10)
    for name, base in baselines.items():
        metrics[name] = nest({**protocols(base, table, sel, k), **gallery_protocols(base, table, sel, k)}, k)
    return Evaluation(metrics, trained)


def gallery_protocols(feats: np.ndarray, table: pd.DataFrame, sel: np.ndarray, k: int, searcher=None) -> dict:
    """Visual search over every image, trained on or held out: label vectors from the training images only;
    composition of every pair, and transfer from every image to each other expression, the query image
    excluded. A hit is any other image of the target pair."""
    from facearith.index import ExactSearcher

    P, E = table.identity.to_numpy(), table.attribute.to_numpy()
    idx = Indexed(feats, P, E, searcher or ExactSearcher(feats), vectors_from=sel)
    return {
        "gallery.composition": composition_records(idx, all_pairs(P[sel], E[sel]), k),
        "gallery.transfer": transfer_records(idx, feats, P, E, np.arange(len(P)), k=k),
    }


def per_label(records: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Composition and transfer top-1 per person and per expression."""
    comp, tran = records["composition"], records["transfer"]
    return {
        label: pd.DataFrame(
            {"composition_top1": comp.groupby(col).top1.mean(), "transfer_top1": tran.groupby(col).top1.mean()}
        )
        .rename_axis(label)
        .reset_index()
        for col, label in (("identity", "person"), ("attribute", "expression"))
    }


def summary_line(metrics: dict) -> str:
    m = metrics
    return (
        f"evaluate: composition top1 {m['composition']['top1']:.3f}, transfer top1 {m['transfer']['top1']:.3f} "
        f"(untrained {m['baseline_untrained']['composition']['top1']:.3f}, pixels "
        f"{m['baseline_pixels']['composition']['top1']:.3f}); seed protocol {m['composition_seed']['accuracy']:.3f}"
    )
