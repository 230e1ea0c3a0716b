"""Stage linear: PCA then LDA per axis (Fisherfaces) fitted on the training images' pixels, no training loop.
The features stage sets its features beside the network's; evaluate measures it alone as baseline_linear."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, runner
from facearith.data.images import load_images
from facearith.data.labels import read_table
from facearith.features import linear


def main(args) -> None:
    size = config.load(args.params).linear.size
    table = read_table(args.table)
    rows = np.flatnonzero(table["selected"].to_numpy())
    images = load_images(table.path.iloc[rows].tolist())
    model, scores = linear.fit_images(images, table.identity.iloc[rows], table.attribute.iloc[rows], size)
    linear.save(model, args.out)
    tried = ", ".join(f"{k}: {v:.3f}" for k, v in scores.items())
    print(f"linear: {len(rows)} training images at {size} px, PCA of {model.pca.shape[1]} (cross-validated: {tried})")


if __name__ == "__main__":
    runner.stage("linear", main, __doc__, "params", "table", "out")
