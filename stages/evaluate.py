"""Stage evaluate: every registered protocol (facearith.evaluation.registry) for the indexed features and, beside
them, the network alone, PCA + LDA, an untrained network and raw pixels; the index against exact search; plots."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import config, runner
from facearith.data.images import load_images
from facearith.data.labels import read_table
from facearith.evaluation import plots, run
from facearith.features import baselines, linear
from facearith.fsutil import write_json
from facearith.search import backends
from facearith.search.exact import ExactSearcher


def main(args) -> None:
    params = config.load(args.params)
    ep = params.evaluate
    table = read_table(args.table)
    feats = np.load(args.features)
    images = load_images(table.path.tolist())
    index = backends.open_index(args.index)  # the backend and settings it was built with
    fit = table["selected"].to_numpy()
    untrained = baselines.untrained_features(params.model, params.train, params.features, table, images, fit)
    pixels, pca_lda = baselines.pixel_features(images), linear.load(args.linear).embed(images)
    bases = {"network": np.load(args.network), "baseline_untrained": untrained}
    bases |= {"baseline_pixels": pixels, "baseline_linear": pca_lda}
    result = run.evaluate_all(feats, table, index, bases, ep.recall_at, ep.seed_queries, ep.seed)
    write_json(args.out, result.metrics)
    gallery = plots.gallery(table, images, feats, ExactSearcher(feats[fit]))
    plots.save_evaluation_plots(args.plots, result.records, gallery)
    print(run.summary_line(result.metrics))


if __name__ == "__main__":
    runner.stage("evaluate", main, __doc__, "params", "table", "features", "network", "linear", "index", "out", "plots")
