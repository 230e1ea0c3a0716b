"""Stage index: an NGT index of the selected images' features (object id = position among them)."""

import numpy as np

from facearith import config, data, index, runner


def main(args) -> None:
    p = config.load(args.params).index
    selected = np.load(args.features)[data.read_table(args.table)["selected"].to_numpy()]
    index.build(selected, args.out, p.edge_size_for_creation, p.edge_size_for_search)
    print(f"index: {len(selected)} vectors of {selected.shape[1]} dimensions in {args.out}")


if __name__ == "__main__":
    runner.stage("index", main, __doc__, "params", "table", "features", "out")
