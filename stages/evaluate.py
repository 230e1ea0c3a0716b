"""Stage evaluate: composition accuracy of the trained features (all pairs, and the seed's 100 random
queries) through the NGT index, beside the same protocol on an untrained network."""

import argparse

import numpy as np

from facearith import cli, config, data, evaluate, features, index, model, train
from facearith.fsutil import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", default="data/prepared/table.csv")
    ap.add_argument("--features", default="data/features.npy")
    ap.add_argument("--index", default="data/index")
    ap.add_argument("--out", default="metrics/eval.json")
    args = ap.parse_args()
    params = config.load(args.params)
    ep = params["evaluate"]
    table = data.read_table(args.table)
    sel = table[table["selected"]]
    feats = np.load(args.features)[table["selected"].to_numpy()]
    persons, exprs = sel.person.to_numpy(), sel.expression.to_numpy()
    pairs = evaluate.all_pairs(persons, exprs)
    seed_pairs = evaluate.seed_pairs(persons, exprs, ep["seed_queries"], ep["seed"])

    ngt = index.NGTSearcher(args.index, params["index"]["epsilon"])
    comp = evaluate.composition(ngt, feats, persons, exprs, pairs, ep["k"])
    seed = evaluate.composition(ngt, feats, persons, exprs, seed_pairs, 1)

    # the same protocol on the network before training (same seed, same init)
    train.seed_everything(params["train"]["seed"], params["train"]["threads"])
    n_p, n_e = table.person.nunique(), table.expression.nunique()
    untrained = model.build(params["model"], n_p * n_e, n_p, n_e)
    images = data.load_images(sel.path.tolist())
    size = params["train"]["image_size"]
    train.recalibrate_batchnorm(untrained, images, size, "cpu")  # fair: the trained net gets the same
    raw = features.extract(untrained, images, size, params["features"]["batch_size"])
    base = evaluate.composition(index.ExactSearcher(raw), raw, persons, exprs, pairs, ep["k"])

    metrics = {
        "composition": comp,
        "composition_seed": {"accuracy": seed["top1"], "queries": seed["queries"]},
        "baseline_untrained": {"composition": base},
    }
    write_json(args.out, metrics)
    print(
        f"evaluate: composition top1 {comp['top1']:.3f} top{ep['k']} {comp['top' + str(ep['k'])]:.3f} "
        f"(untrained {base['top1']:.3f}); seed protocol {seed['top1']:.3f}"
    )


if __name__ == "__main__":
    cli.run(main, "evaluate")
