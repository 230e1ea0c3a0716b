"""Stage index: an NGT index of every image's features, trained on or held out (object id = table row), and
beside it what shaped it (settings.json): the fuse weights, the search settings, and the checksums of the
features, the model and PCA + LDA they came from, so that `facearith query` searches as the pipeline did."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, data, index, runner


def main(args) -> None:
    params = config.load(args.params)
    p = params.index
    feats = np.load(args.features)
    if len(feats) != len(data.read_table(args.table)):
        raise index.IndexMissingError(f"{args.features} does not match {args.table}; run `dvc repro features`")
    w_id, w_attr = params.features.fuse_weight.pair()
    settings = {
        "fuse_weight": {"identity": w_id, "attribute": w_attr},
        "epsilon": p.epsilon,
        "edge_size_for_creation": p.edge_size_for_creation,
        "edge_size_for_search": p.edge_size_for_search,
        "rows": int(feats.shape[0]),
        "dimensions": int(feats.shape[1]),
        "sha256": {name: index.sha256(path) for name, path in (("features", args.features), ("model", args.model),
                                                                ("linear", args.linear))},
    }  # fmt: skip
    index.build(feats, args.out, p.edge_size_for_creation, p.edge_size_for_search, p.build_threads, settings)
    print(f"index: {len(feats)} vectors of {feats.shape[1]} dimensions in {args.out}")


if __name__ == "__main__":
    runner.stage("index", main, __doc__, "params", "table", "features", "model", "linear", "out")
