"""Stage features: the trained model's features of every image in the table, in the table's row order."""

import argparse

import numpy as np

from facearith import cli, config, data, features, model
from facearith.fsutil import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", default="data/prepared/table.csv")
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--out", default="data/features.npy")
    args = ap.parse_args()
    params = config.load(args.params)
    device = model.resolve_device(params["train"]["device"])
    net, blob = model.load(args.model, device)
    table = data.read_table(args.table)
    feats = features.extract(
        net, data.load_images(table.path.tolist()), blob["image_size"], params["features"]["batch_size"], device
    )
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, feats)
    print(f"features: {feats.shape[0]} x {feats.shape[1]}")


if __name__ == "__main__":
    cli.run(main, "features")
