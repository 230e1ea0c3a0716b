"""Stage features: every image's features, in the table's row order: the indexed ones (the network's beside
PCA + LDA's per axis, features.fuse_weight) and the network's alone."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, data, features, linear, model, runner
from facearith.fsutil import atomic_path


def main(args) -> None:
    params = config.load(args.params)
    fp = params.features
    device = model.resolve_device(params.train.device)
    net, blob = model.load(args.model, device)
    lin = linear.load(args.linear)
    images = data.load_images(data.read_table(args.table).path.tolist())
    indexed, network = features.embed(
        net, blob["image_size"], lin, fp.fuse_weight.pair(), images, fp.batch_size, device
    )
    for path, feats in ((args.network, network), (args.out, indexed)):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)
    print(f"features: {indexed.shape[0]} x {indexed.shape[1]} (the network's: {network.shape[1]})")


if __name__ == "__main__":
    runner.stage("features", main, __doc__, "params", "table", "model", "linear", "out", "network")
