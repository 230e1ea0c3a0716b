"""Stage evaluate: composition and transfer, on the indexed (training) images through NGT and on held-out
images, for the indexed features (the network beside PCA + LDA) and, beside them, the network alone, PCA + LDA
alone, an untrained network and raw pixels; NGT against exact search; per-label plots, a confusion matrix of
expressions and a gallery."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)
import numpy as np

from facearith import baselines, config, data, evaluate, index, linear, pictures, runner
from facearith.fsutil import write_json


def main(args) -> None:
    params = config.load(args.params)
    ep = params.evaluate
    table = data.read_table(args.table)
    feats = np.load(args.features)
    images = data.load_images(table.path.tolist())
    ngt = index.NGTSearcher(args.index, params.index.epsilon)
    fit = table["selected"].to_numpy()
    bases = {
        "network": np.load(args.network),
        "baseline_untrained": baselines.untrained_features(
            params.model, params.train, params.features, table, images, fit
        ),
        "baseline_pixels": baselines.pixel_features(images),
        "baseline_linear": linear.load(args.linear).embed(images),
    }
    result = evaluate.evaluate_all(feats, table, ngt, bases, ep.recall_at, ep.seed_queries, ep.seed)
    write_json(args.out, result.metrics)
    gallery = pictures.gallery(table, images, feats, index.ExactSearcher(feats[fit]))
    pictures.save_evaluation_plots(args.plots, result.records, gallery)
    print(evaluate.summary_line(result.metrics))


if __name__ == "__main__":
    runner.stage("evaluate", main, __doc__, "params", "table", "features", "network", "linear", "index", "out", "plots")
