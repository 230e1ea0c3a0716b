"""Stage index: an NGT index of the selected images' features (object id = position among them)."""

import argparse

import numpy as np

from facearith import cli, config, data, index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", default="data/prepared/table.csv")
    ap.add_argument("--features", default="data/features.npy")
    ap.add_argument("--out", default="data/index")
    args = ap.parse_args()
    p = config.load(args.params)["index"]
    table = data.read_table(args.table)
    feats = np.load(args.features)
    selected = feats[table["selected"].to_numpy()]
    index.build(selected, args.out, p["edge_size_for_creation"], p["edge_size_for_search"])
    print(f"index: {len(selected)} vectors of {selected.shape[1]} dimensions in {args.out}")


if __name__ == "__main__":
    cli.run(main, "index")
