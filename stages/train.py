"""Stage train: triplet training of the network on the selected images; the model, metrics and loss curve."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)

from dvclive import Live
from facearith import config, pictures, runner
from facearith.data.labels import read_table
from facearith.fsutil import write_json
from facearith.training import checkpoints, members, network


def main(args) -> None:
    params = config.load(args.params)
    tp, ck = params.train, params.checkpoint
    table = read_table(args.table)
    device = network.resolve_device(tp.device)
    how = " (train.device auto, no CUDA device)" if tp.device == "auto" and device.type == "cpu" else ""
    print(f"train: {int(table['selected'].sum())} images, device {device}{how}")  # once, as information
    with Live(args.live, dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log(epoch: int, loss: float) -> None:
            live.log_metric("loss", loss)
            live.next_step()

        fingerprint = checkpoints.fingerprint(params.model, tp, args.table)
        net, result = members.train_selected(
            table, params.model, tp, device, on_epoch=log, checkpoint=ck.path or None, resume=ck.resume,
            fingerprint=fingerprint, checkpoint_every_s=ck.every_s,
        )  # fmt: skip
        # the loss curve as a PNG too, for viewing offline (dvc plots show draws the TSV with Vega from the network)
        live.log_image("loss.png", pictures.line_chart(result.losses, "Training loss per epoch", "epoch", "loss"))
    network.save(net, args.model, params.model, *members.model_extra(table, tp))
    write_json(args.metrics, members.run_metrics(result, tp, device))
    checkpoints.remove(ck.path, params.model.members)  # finished: nothing left to resume
    print(members.summary(result, tp))


if __name__ == "__main__":
    runner.stage("train", main, __doc__, "params", "table", "model", "metrics", "live")
