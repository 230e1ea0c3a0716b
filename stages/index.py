"""Stage index: an NGT index of every image's features, trained on or held out (object id = table row)."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, data, index, runner


def main(args) -> None:
    p = config.load(args.params).index
    feats = np.load(args.features)
    if len(feats) != len(data.read_table(args.table)):
        raise index.IndexMissingError(f"{args.features} does not match {args.table}; run `dvc repro features`")
    index.build(feats, args.out, p.edge_size_for_creation, p.edge_size_for_search, p.build_threads)
    print(f"index: {len(feats)} vectors of {feats.shape[1]} dimensions in {args.out}")


if __name__ == "__main__":
    runner.stage("index", main, __doc__, "params", "table", "features", "out")
