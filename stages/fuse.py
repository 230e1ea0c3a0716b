"""Stage fuse: the weights of the network's features beside PCA + LDA's in the index, per axis: chosen on the
training images alone (features.fuse: inner; a network trained on part of them, scored on the rest), or
params' features.fuse_weight (fixed). The features stage uses them; index records them beside the index. The
inner network is kept for stage train to continue (final.start: inner); with fixed weights its file says none."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)

from facearith import config, runner
from facearith.data.labels import read_table
from facearith.features import choice as fuse_choice
from facearith.features import fusion
from facearith.fsutil import write_json
from facearith.training import checkpoints, network


def main(args) -> None:
    params = config.load(args.params)
    device = network.resolve_device(params.train.device)
    # the inner network checkpoints beside the train stage's network, and resumes as it does
    ck = fusion.inner_checkpoint(params.checkpoint.path)
    fingerprint = checkpoints.fingerprint(params.model, params.train, args.table) if ck else ""
    table = read_table(args.table)
    choice, inner_net = fusion.decide(table, params, device, checkpoint=ck, fingerprint=fingerprint)
    fusion.save_inner(inner_net, args.inner, table, params)
    fuse_choice.save(choice, args.out)
    write_json(args.metrics, choice.metrics())
    fusion.remove_checkpoints(ck, params.features.fuse_folds, params.model.members)  # finished: nothing to resume
    how, inner, chosen = "fixed by features.fuse_weight", choice.inner, choice.metrics().get("inner", {})
    if choice.rule == "inner":
        folds = f", averaged over {inner['folds']} inner folds" if inner["folds"] > 1 else ""
        how = (
            f"chosen on {inner['heldout']} of the training images held out from an inner network trained on "
            f"{inner['trained']}{folds} in {inner['seconds']:.0f} s (their score {chosen['chosen']['score']:.3f}; "
            f"the network alone {chosen['network']['score']:.3f}, PCA + LDA {chosen['linear']['score']:.3f})"
        )
    print(f"fuse: identity {choice.identity:g}, attribute {choice.attribute:g}, {how}")


if __name__ == "__main__":
    runner.stage("fuse", main, __doc__, "params", "table", "out", "metrics", "inner")
