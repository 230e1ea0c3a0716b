"""Stage index: a search index (index.backend) of every image's features, trained on or held out (id = table
row), and beside it what shaped it (settings.json): the backend and its settings, the fuse weights and how stage
fuse chose them, and the checksums of the features, the model and PCA + LDA they came from, so that `facearith
query` embeds and searches as the pipeline did."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, runner
from facearith.data.labels import read_table
from facearith.errors import IndexMissingError
from facearith.features.choice import load as load_fuse
from facearith.fsutil import sha256
from facearith.search import backends


def main(args) -> None:
    params = config.load(args.params)
    feats = np.load(args.features)
    if len(feats) != len(read_table(args.table)):
        raise IndexMissingError(f"{args.features} does not match {args.table}; run `dvc repro features`")
    choice = load_fuse(args.fuse)
    files = {"features": args.features, "model": args.model, "linear": args.linear}
    extra = {
        "fuse_weight": {"identity": choice.identity, "attribute": choice.attribute},
        "fuse_choice": choice.metrics(),  # how they were chosen (stage fuse)
        "sha256": {name: sha256(path) for name, path in files.items()},
    }
    backends.build(feats, args.out, params.index, extra)
    print(f"index: {len(feats)} vectors of {feats.shape[1]} dimensions in {args.out} ({params.index.backend})")


if __name__ == "__main__":
    runner.stage("index", main, __doc__, "params", "table", "features", "model", "linear", "fuse", "out")
