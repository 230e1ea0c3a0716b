"""Zero-shot composition: (person, expression) pairs held out of training entirely, in folds.

For each fold a network trains, and PCA + LDA is fitted, without any image of that fold's pairs; then
composition and transfer are asked for those pairs only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facearith.config import FeaturesParams, HeldoutPairsParams, LinearParams, ModelParams, TrainParams
from facearith.errors import ConfigError


def heldout_pairs(
    table: pd.DataFrame,
    images: Sequence[np.ndarray],
    hp: HeldoutPairsParams,
    model_params: ModelParams,
    train_params: TrainParams,
    features_params: FeaturesParams,
    linear_params: LinearParams,
    ks: Sequence[int],
) -> dict:
    """metrics/heldout_pairs.json's content: composition and transfer summaries over all folds, for the indexed
    features (the network beside PCA + LDA, each fitted without the fold's pairs) and under `network` for the
    network alone."""
    if hp.folds == 0:
        return {"folds": 0}
    import torch

    from facearith import data, evaluate, features, index, linear, model, train

    sel = table["selected"].to_numpy()
    ident, attr = table.identity.to_numpy(), table.attribute.to_numpy()
    pairs = evaluate.all_pairs(ident[sel], attr[sel])
    if hp.folds > len(pairs):
        raise ConfigError(f"heldout_pairs.folds is {hp.folds} but there are only {len(pairs)} pairs")
    fold = data.fold_of_pairs(pairs, hp.folds, hp.seed)
    row_fold = np.array([fold.get((i, a), -1) for i, a in zip(ident, attr, strict=True)])
    device = model.resolve_device(train_params.device)
    n_i, n_a = table.identity.nunique(), table.attribute.nunique()
    records: dict[str, dict[str, list[pd.DataFrame]]] = {}
    unanswerable = 0
    sel_images = [images[i] for i in np.flatnonzero(sel)]
    for f in range(hp.folds):
        fit = sel & (row_fold != f)
        held = {p for p, g in fold.items() if g == f}
        fit_images = [images[i] for i in np.flatnonzero(fit)]
        net, _ = train.train_members(
            fit_images, ident[fit], attr[fit], (n_i, n_a), model_params, train_params, device, progress=False
        )
        lin, _ = linear.fit_images(fit_images, ident[fit], attr[fit], linear_params.size)
        weights = features_params.fuse_weight.pair()
        indexed, network = features.embed(
            net, train_params.image_size, lin, weights, sel_images, features_params.batch_size, device
        )
        # label vectors from the trained pairs' images only: a held-out pair's own images must not shape its query
        src = np.array([(i, a) not in held for i, a in zip(ident[sel], attr[sel], strict=True)])
        for name, feats in (("indexed", indexed), ("network", network)):
            idx = evaluate.Indexed(feats, ident[sel], attr[sel], index.ExactSearcher(feats), vectors_from=src)
            # a pair whose person or expression has no trained image left cannot be composed: counted apart
            v_id, v_attr = idx.vectors()
            askable = sorted(p for p in held if p[0] in v_id and p[1] in v_attr)
            got = records.setdefault(name, {"composition": [], "transfer": []})
            got["composition"].append(evaluate.composition_records(idx, askable, max(ks)))
            # transfer from the person's images whose pairs were trained on, to the held-out pair
            got["transfer"].append(
                evaluate.transfer_records(
                    idx, feats[src], ident[sel][src], attr[sel][src], np.flatnonzero(src), depth=max(ks),
                    only_targets=held,
                )
            )  # fmt: skip
        unanswerable += len(held) - len(askable)
        comp = records["indexed"]["composition"][-1]
        print(f"heldout_pairs: fold {f + 1}/{hp.folds}: composition top1 {comp.top1.mean():.3f}")
        del net
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def summary(name: str) -> dict:
        comp, tran = (pd.concat(records[name][k]) for k in ("composition", "transfer"))
        return {
            "composition": {**evaluate.summarize(comp, ks), "unanswerable": unanswerable},
            "transfer": evaluate.summarize(tran, ks),
        }

    return {"folds": hp.folds, **summary("indexed"), "network": summary("network")}
