"""Stage features: every image's features, in the table's row order: the indexed ones (the network's beside
PCA + LDA's per axis, weighted as stage fuse chose) and the network's alone."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, runner
from facearith.data.images import load_images
from facearith.data.labels import read_table
from facearith.features import choice, linear
from facearith.features.extract import embed
from facearith.fsutil import atomic_path
from facearith.training import network


def main(args) -> None:
    params = config.load(args.params)
    fp = params.features
    device = network.resolve_device(params.train.device)
    net, blob = network.load(args.model, device)
    lin = linear.load(args.linear)
    weights = choice.load(args.fuse).pair()  # stage fuse's
    images = load_images(read_table(args.table).path.tolist())
    indexed, alone = embed(net, blob["image_size"], lin, weights, images, fp.batch_size, device)
    for path, feats in ((args.network, alone), (args.out, indexed)):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)
    print(f"features: {indexed.shape[0]} x {indexed.shape[1]} (the network's: {alone.shape[1]})")


if __name__ == "__main__":
    runner.stage("features", main, __doc__, "params", "table", "model", "linear", "fuse", "out", "network")
