"""The evaluate stage's measurements, together: every registered protocol on the indexed features (the gallery
through the built index) and on each baseline (exact search), the seed's protocol, and the index against exact
search; per-label accuracies and the one-line summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facearith.evaluation.protocols import (
    Indexed,
    all_pairs,
    composition,
    composition_queries,
    recall,
    seed_pairs,
    summarize,
    transfer_queries,
)
from facearith.evaluation.registry import PROTOCOLS, Protocol, Scene, run
from facearith.search.backends import Searcher
from facearith.search.exact import ExactSearcher


def nest(records: dict[str, pd.DataFrame], ks: Sequence[int]) -> dict:
    """{'a.b': records} to {'a': {'b': summary}}, the shape of metrics/eval.json."""
    out: dict = {}
    for key, rec in records.items():
        node = out
        *head, last = key.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = summarize(rec, ks)
    return out


@dataclass
class Evaluation:
    metrics: dict
    records: dict[str, pd.DataFrame]  # the indexed features', per protocol


def evaluate_all(
    feats: np.ndarray,
    table: pd.DataFrame,
    index: Searcher,
    baselines: dict[str, np.ndarray],
    ks: Sequence[int],
    seed_queries: int,
    seed: int,
    protocols: Mapping[str, Protocol] = PROTOCOLS,
) -> Evaluation:
    """Every protocol on the indexed features (the gallery searched through `index`, the built index of every
    image), the seed's protocol, the index against exact search (`search` in the metrics), and every protocol on
    each of `baselines` (named features of every image: the network alone and the baselines), by exact search."""
    sel = table["selected"].to_numpy()
    ident, attr = table.identity.to_numpy(), table.attribute.to_numpy()
    P, E = ident[sel], attr[sel]
    depth = max(ks)
    records = measure(feats, table, depth, index, protocols)
    metrics = nest(records, ks)
    chosen = composition(ExactSearcher(feats[sel]), feats[sel], P, E, seed_pairs(P, E, seed_queries, seed), (1,))
    metrics["composition_seed"] = {"accuracy": chosen["top1"], "queries": chosen["queries"]}
    everything = Indexed(feats, ident, attr, index, vectors_from=sel)
    queries = np.concatenate(
        [composition_queries(everything, all_pairs(P, E)), transfer_queries(everything, feats[sel], P, E).vectors]
    )
    metrics["search"] = recall(index, ExactSearcher(feats), queries, 10)
    for name, base in baselines.items():
        metrics[name] = nest(measure(base, table, depth, None, protocols), ks)
    return Evaluation(metrics, records)


def measure(
    feats: np.ndarray,
    table: pd.DataFrame,
    depth: int,
    searcher: Searcher | None = None,
    protocols: Mapping[str, Protocol] = PROTOCOLS,
) -> dict[str, pd.DataFrame]:
    """Each protocol's records for `feats` (the table's rows), the gallery searched by `searcher` (None: exact)."""
    ident, attr = table.identity.to_numpy(), table.attribute.to_numpy()
    scene = Scene(feats, ident, attr, table["selected"].to_numpy(), depth, searcher or ExactSearcher(feats))
    return run(scene, protocols)


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
    """One line: held-out composition and transfer top-1 (what generalises) of the indexed features beside the
    network alone, PCA + LDA, the untrained network and pixels when there are held-out images; the trained
    images' and the seed's protocol after."""

    def rate(tree: dict, *keys: str) -> str:
        for key in keys:
            tree = tree.get(key) or {}
        return "-" if not isinstance(tree, float) else f"{tree:.3f}"

    m = metrics
    parts = []
    if "heldout_images" in m:
        held = [("indexed", m)] + [
            (n, m.get(k, {}))
            for n, k in (
                ("network", "network"),
                ("PCA + LDA", "baseline_linear"),
                ("untrained", "baseline_untrained"),
                ("pixels", "baseline_pixels"),
            )
        ]
        parts.append(
            "held-out composition / transfer top1: "
            + ", ".join(
                f"{name} {rate(t, 'heldout_images', 'composition', 'top1')} / "
                f"{rate(t, 'heldout_images', 'transfer', 'top1')}"
                for name, t in held
            )
        )
    parts.append(
        f"trained images {rate(m, 'composition', 'top1')} / {rate(m, 'transfer', 'top1')}; "
        f"seed protocol {rate(m, 'composition_seed', 'accuracy')}"
    )
    return "evaluate: " + "; ".join(parts)
