"""Stage heldout_pairs: zero-shot composition, in folds of (person, expression) pairs held out of training.
heldout_pairs.folds: 0 skips it (the default: it trains once per fold)."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)

from facearith import config, data, heldout, runner
from facearith.fsutil import write_json


def main(args) -> None:
    params = config.load(args.params)
    hp = params.heldout_pairs
    if hp.folds == 0:
        write_json(args.out, {"heldout_pairs": {"folds": 0}})
        print("heldout_pairs: skipped (heldout_pairs.folds is 0)")
        return
    table = data.read_table(args.table)
    images = data.load_images(table.path.tolist())
    out = heldout.heldout_pairs(
        table, images, hp, params.model, params.train, params.features, params.linear, params.evaluate.recall_at
    )
    write_json(args.out, {"heldout_pairs": out})
    net = out["network"]
    print(
        f"heldout_pairs: composition top1 {out['composition']['top1']:.3f} (the network alone "
        f"{net['composition']['top1']:.3f}), transfer top1 {out['transfer']['top1']:.3f} "
        f"({net['transfer']['top1']:.3f}) over {out['composition']['queries']} pairs in {hp.folds} folds"
    )


if __name__ == "__main__":
    runner.stage("heldout_pairs", main, __doc__, "params", "table", "out")
