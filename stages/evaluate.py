"""Stage evaluate: composition and transfer, on the indexed (training) images through NGT and on held-out
images, beside an untrained network and raw pixels; NGT against exact search; per-label plots, a confusion
matrix of expressions and a gallery."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from facearith import cli, config, data, evaluate, features, index, model, pictures, train
from facearith.arithmetic import normalize
from facearith.fsutil import atomic_path, write_json


def pixel_features(images: list[np.ndarray], size: int = 16) -> np.ndarray:
    """The raw-pixel baseline: images downscaled to size x size, flattened, normalised like the features."""
    return normalize(features.to_batch(images, size).flatten(1).numpy())


def untrained_features(params: dict, table: pd.DataFrame, images: list[np.ndarray], fit: np.ndarray) -> np.ndarray:
    """The network before training (same seed and init); BatchNorm statistics from the training images."""
    train.seed_everything(params["train"]["seed"], params["train"]["threads"])
    n_p, n_e = table.identity.nunique(), table.attribute.nunique()
    net = model.build(params["model"], n_p * n_e, n_p, n_e)
    size = params["train"]["image_size"]
    train.recalibrate_batchnorm(net, [images[i] for i in np.flatnonzero(fit)], size, "cpu")
    return features.extract(net, images, size, params["features"]["batch_size"])


def protocols(feats: np.ndarray, table: pd.DataFrame, sel: np.ndarray, k: int, searcher=None) -> dict:
    """Composition and transfer on the selected rows, and on the held-out rows when there are any."""
    P, E = table.identity.to_numpy(), table.attribute.to_numpy()
    idx = evaluate.Indexed(feats[sel], P[sel], E[sel], searcher or index.ExactSearcher(feats[sel]))
    n = int(sel.sum())
    out = {
        "composition": evaluate.composition_records(idx, evaluate.all_pairs(P[sel], E[sel]), k),
        "transfer": evaluate.transfer_records(idx, feats[sel], P[sel], E[sel], np.arange(n), k=k),
    }
    held = ~sel
    if held.any():
        hidx = evaluate.Indexed(feats[held], P[held], E[held], index.ExactSearcher(feats[held]))
        out["heldout_images.composition"] = evaluate.composition_records(hidx, evaluate.all_pairs(P[held], E[held]), k)
        out["heldout_images.transfer"] = evaluate.transfer_records(
            hidx, feats[held], P[held], E[held], np.arange(int(held.sum())), k=k
        )
    return out


def nest(records: dict[str, pd.DataFrame], k: int) -> dict:
    out: dict = {}
    for key, rec in records.items():
        node = out
        *head, last = key.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = evaluate.summarize(rec, k)
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", default="data/prepared/table.csv")
    ap.add_argument("--features", default="data/features.npy")
    ap.add_argument("--index", default="data/index")
    ap.add_argument("--out", default="metrics/eval.json")
    ap.add_argument("--plots", default="plots")
    args = ap.parse_args()
    params = config.load(args.params)
    ep, k = params["evaluate"], params["evaluate"]["k"]
    table = data.read_table(args.table)
    sel = table["selected"].to_numpy()
    feats = np.load(args.features)
    P, E = table.identity.to_numpy(), table.attribute.to_numpy()

    ngt = index.NGTSearcher(args.index, params["index"]["epsilon"])
    trained = protocols(feats, table, sel, k, ngt)
    metrics = nest(trained, k)
    seed = evaluate.composition(
        ngt, feats[sel], P[sel], E[sel], evaluate.seed_pairs(P[sel], E[sel], ep["seed_queries"], ep["seed"]), 1
    )
    metrics["composition_seed"] = {"accuracy": seed["top1"], "queries": seed["queries"]}

    # NGT against exact search, on the same composition and transfer queries
    idx = evaluate.Indexed(feats[sel], P[sel], E[sel], ngt)
    queries = np.concatenate(
        [
            evaluate.composition_queries(idx, evaluate.all_pairs(P[sel], E[sel])),
            evaluate.transfer_queries(idx, feats[sel], P[sel], E[sel]).vectors,
        ]
    )
    metrics["ngt"] = evaluate.recall(ngt, index.ExactSearcher(feats[sel]), queries, 10)

    images = data.load_images(table.path.tolist())
    for name, base in (
        ("baseline_untrained", untrained_features(params, table, images, sel)),
        ("baseline_pixels", pixel_features(images)),
    ):
        metrics[name] = nest(protocols(base, table, sel, k), k)
    write_json(args.out, metrics)

    # pictures: per-label accuracy, the expressions' confusion under transfer, a gallery
    plots = Path(args.plots)
    comp, tran = trained["composition"], trained["transfer"]
    for col, label in (("identity", "person"), ("attribute", "expression")):
        per = (
            pd.DataFrame(
                {"composition_top1": comp.groupby(col).top1.mean(), "transfer_top1": tran.groupby(col).top1.mean()}
            )
            .rename_axis(label)
            .reset_index()
        )
        name = f"per_{label}"
        write_csv(per, plots / f"{name}.csv")
        chart = pictures.bar_chart(
            per[label].tolist(),
            {"composition": per.composition_top1.tolist(), "transfer": per.transfer_top1.tolist()},
            f"Composition and transfer top-1 per {label}",
            "top-1",
        )
        pictures.save_figure(chart, plots / f"{name}.png")
    write_csv(
        tran[["attribute", "found_attribute"]].rename(columns={"attribute": "target"}), plots / "transfer_confusion.csv"
    )
    chart = pictures.confusion_chart(
        tran.attribute.tolist(),
        tran.found_attribute.tolist(),
        "Expression confusion under transfer",
        "expression of the first result",
        "target expression",
    )
    pictures.save_figure(chart, plots / "transfer_confusion.png")
    pictures.save_png(gallery(table, sel, images, k, ngt, feats), plots / "gallery.png")

    print(
        f"evaluate: composition top1 {metrics['composition']['top1']:.3f}, transfer top1 "
        f"{metrics['transfer']['top1']:.3f} (untrained {metrics['baseline_untrained']['composition']['top1']:.3f}"
        f", pixels {metrics['baseline_pixels']['composition']['top1']:.3f}); seed protocol {seed['top1']:.3f}"
    )


def gallery(table, sel, images, k, ngt, feats, n: int = 3):
    """A few composition queries and a few transfers, each followed by its top k; hits framed green."""
    rows = table[sel].reset_index(drop=True)
    sel_images = [images[i] for i in np.flatnonzero(sel)]
    P, E = rows.identity.to_numpy(), rows.attribute.to_numpy()
    idx = evaluate.Indexed(feats[sel], P, E, ngt)
    rng = np.random.default_rng(0)
    strips = []
    pairs = evaluate.all_pairs(P, E)
    for q, (p, e) in zip(evaluate.composition_queries(idx, pairs), pairs, strict=True):
        if len(strips) == n:
            break
        ids, _ = ngt.search(q[None], k)
        tiles = [(sel_images[i], f"{P[i]} {E[i]}", (P[i], E[i]) == (p, e)) for i in ids[0]]
        strips.append(pictures.strip(f"{p} + {e}", tiles, "composition"))
    for qi in rng.choice(len(rows), size=min(n, len(rows)), replace=False):
        target = next(a for a in sorted(set(E)) if a != E[qi])
        tq = evaluate.transfer_queries(idx, feats[sel][[qi]], P[[qi]], E[[qi]], [qi], only_targets={(P[qi], target)})
        if not tq.targets:
            continue
        ids, _ = ngt.search(tq.vectors, k + 1)
        found = [i for i in ids[0] if i != qi][:k]
        tiles = [(sel_images[i], f"{P[i]} {E[i]}", (P[i], E[i]) == (P[qi], target)) for i in found]
        strips.append(pictures.strip(sel_images[qi], tiles, f"{P[qi]} {E[qi]} -> {target}"))
    return pictures.stack(strips)


if __name__ == "__main__":
    cli.run(main, "evaluate")
