"""Stage features: the trained model's features of every image in the table, in the table's row order."""

import numpy as np

from facearith import config, data, features, model, runner
from facearith.fsutil import atomic_path


def main(args) -> None:
    params = config.load(args.params)
    device = model.resolve_device(params.train.device)
    net, blob = model.load(args.model, device)
    images = data.load_images(data.read_table(args.table).path.tolist())
    feats = features.extract(net, images, blob["image_size"], params.features.batch_size, device)
    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        np.save(f, feats)
    print(f"features: {feats.shape[0]} x {feats.shape[1]}")


if __name__ == "__main__":
    runner.stage("features", main, __doc__, "params", "table", "model", "out")
