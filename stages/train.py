"""Stage train: the network trained on the selected images, new or stage fuse's inner one continued (final.start)."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)

from dvclive import Live
from facearith import config, pictures, runner
from facearith.data.labels import read_table
from facearith.fsutil import write_json
from facearith.training import checkpoints, members, network


def main(args) -> None:
    params = config.load(args.params)
    table = read_table(args.table)
    starts, tp = members.final_start(args.inner, params.model, params.train, params.final)
    device = network.resolve_device(tp.device)
    how = " (train.device auto, no CUDA device)" if tp.device == "auto" and device.type == "cpu" else ""
    how, ck = how + (f", continuing {args.inner}" if starts else ""), params.checkpoint
    print(f"train: {int(table['selected'].sum())} images, device {device}{how}")  # once, as information
    with Live(args.live, dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log(epoch: int, loss: float) -> None:
            live.log_metric("loss", loss)
            live.next_step()

        fingerprint = checkpoints.fingerprint(params.model, tp, args.table, args.inner if starts else "")
        net, result = members.train_selected(
            table, params.model, tp, device, on_epoch=log, checkpoint=ck.path or None, resume=ck.resume,
            fingerprint=fingerprint, checkpoint_every_s=ck.every_s, starts=starts,
        )  # fmt: skip
        # the loss curve as a PNG too, for viewing offline (dvc plots show draws the TSV with Vega from the network)
        live.log_image("loss.png", pictures.line_chart(result.losses, "Training loss per epoch", "epoch", "loss"))
    network.save(net, args.model, params.model, *members.model_extra(table, tp))
    write_json(args.metrics, members.run_metrics(result, tp, device) | {"start": params.final.start})
    checkpoints.remove(ck.path, params.model.members)  # finished: nothing left to resume
    print(members.summary(result, tp))


if __name__ == "__main__":
    runner.stage("train", main, __doc__, "params", "table", "inner", "model", "metrics", "live")
