"""Stage heldout_pairs: zero-shot composition. The (person, expression) pairs are split into folds; for each
fold a network trains without any image of that fold's pairs, then composition and transfer are asked for
those pairs only. heldout_pairs.folds: 0 skips it (the default: it trains once per fold)."""

import argparse

import numpy as np
import torch

from facearith import cli, config, data, evaluate, features, index, model, train
from facearith.fsutil import write_json


def fold_of_pairs(pairs: list[tuple[str, str]], folds: int, seed: int) -> dict[tuple[str, str], int]:
    """Each pair in exactly one fold, sizes differing by at most one."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    return {pairs[j]: i % folds for i, j in enumerate(order)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", default="data/prepared/table.csv")
    ap.add_argument("--out", default="metrics/heldout_pairs.json")
    args = ap.parse_args()
    params = config.load(args.params)
    hp, tp, k = params["heldout_pairs"], params["train"], params["evaluate"]["k"]
    if hp["folds"] == 0:
        write_json(args.out, {"heldout_pairs": {"folds": 0}})
        print("heldout_pairs: skipped (heldout_pairs.folds is 0)")
        return
    table = data.read_table(args.table)
    sel = table["selected"].to_numpy()
    ident, attr = table.identity.to_numpy(), table.attribute.to_numpy()
    pairs = evaluate.all_pairs(ident[sel], attr[sel])
    if hp["folds"] > len(pairs):
        raise ValueError(f"heldout_pairs.folds is {hp['folds']} but there are only {len(pairs)} pairs")
    fold = fold_of_pairs(pairs, hp["folds"], hp["seed"])
    row_fold = np.array([fold.get((i, a), -1) for i, a in zip(ident, attr, strict=True)])
    images = data.load_images(table.path.tolist())
    device = model.resolve_device(tp["device"])
    n_i, n_a = table.identity.nunique(), table.attribute.nunique()
    comp, tran = [], []
    for f in range(hp["folds"]):
        fit = sel & (row_fold != f)
        held = {p for p, g in fold.items() if g == f}
        train.seed_everything(tp["seed"], tp["threads"])
        net = model.build(params["model"], n_i * n_a, n_i, n_a)
        fit_images = [images[i] for i in np.flatnonzero(fit)]
        train.train(net, fit_images, ident[fit], attr[fit], tp, device, progress=False)
        feats = features.extract(
            net, [images[i] for i in np.flatnonzero(sel)], tp["image_size"], params["features"]["batch_size"], device
        )
        idx = evaluate.Indexed(feats, ident[sel], attr[sel], index.ExactSearcher(feats))
        comp.append(evaluate.composition_records(idx, sorted(held), k))
        # transfer from the person's images whose pairs were trained on, to the held-out pair
        src = np.array([(i, a) not in held for i, a in zip(ident[sel], attr[sel], strict=True)])
        tran.append(
            evaluate.transfer_records(
                idx, feats[src], ident[sel][src], attr[sel][src], np.flatnonzero(src), k=k, only_targets=held
            )
        )
        print(f"heldout_pairs: fold {f + 1}/{hp['folds']}: composition top1 {comp[-1].top1.mean():.3f}")
        del net
        if device.type == "cuda":
            torch.cuda.empty_cache()
    import pandas as pd

    out = {
        "folds": hp["folds"],
        "composition": evaluate.summarize(pd.concat(comp), k),
        "transfer": evaluate.summarize(pd.concat(tran), k),
    }
    write_json(args.out, {"heldout_pairs": out})
    print(
        f"heldout_pairs: composition top1 {out['composition']['top1']:.3f}, transfer top1 "
        f"{out['transfer']['top1']:.3f} over {len(pairs)} pairs in {hp['folds']} folds"
    )


if __name__ == "__main__":
    cli.run(main, "heldout_pairs")
