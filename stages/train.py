"""Stage train: triplet training of the network on the selected images; the model, metrics and loss curve."""

import argparse
from pathlib import Path

from dvclive import Live
from facearith import cli, config, data, model, pictures, train
from facearith.fsutil import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", default="data/prepared/table.csv")
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--metrics", default="metrics/train.json")
    ap.add_argument("--live", default="dvclive")
    args = ap.parse_args()
    params = config.load(args.params)
    tp = params["train"]
    table = data.read_table(args.table)
    train_rows = table[table["selected"]]
    num_classes = table.identity.nunique() * table.attribute.nunique()
    device = model.resolve_device(tp["device"])
    # the CPU is the normal case on a laptop: say where training runs once, as information
    how = " (train.device auto, no CUDA device)" if tp["device"] == "auto" and device.type == "cpu" else ""
    print(f"train: {len(train_rows)} images, device {device}{how}")
    train.seed_everything(tp["seed"], tp["threads"])
    net = model.build(params["model"], num_classes, table.identity.nunique(), table.attribute.nunique())
    images = data.load_images(train_rows.path.tolist())
    ck = params["checkpoint"]
    fingerprint = train.fingerprint(params["model"], tp, args.table)
    with Live(args.live, dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log(epoch: int, loss: float) -> None:
            live.log_metric("loss", loss)
            live.next_step()

        result = train.train(
            net,
            images,
            train_rows.identity.to_numpy(),
            train_rows.attribute.to_numpy(),
            tp,
            device,
            on_epoch=log,
            checkpoint=ck["path"] or None,
            resume=ck["resume"],
            fingerprint=fingerprint,
        )
        # the loss curve as a PNG too, for viewing offline (dvc plots show draws the TSV with Vega from the network)
        live.log_image("loss.png", pictures.line_chart(result.losses, "Training loss per epoch", "epoch", "loss"))
    extra = {
        "persons": sorted(table.identity.unique()),
        "expressions": sorted(table.attribute.unique()),
        "image_size": tp["image_size"],
    }
    model.save(net, args.model, params["model"], num_classes, extra)
    write_json(
        args.metrics,
        {
            "loss": result.losses[-1] if result.losses else None,
            # the whole run: a resumed run counts the epochs (and their seconds) of the run it continued
            "epochs": tp["epochs"],
            "seconds": round(result.seconds, 2),
            "images_per_second": round(result.images_per_second, 2),  # through the network
            "anchors_per_second": round(result.anchors_per_second, 2),  # training images trained on
            "epochs_this_run": result.epochs_this_run,
            "seconds_this_run": round(result.seconds_this_run, 2),
            "device": device.type,
        },
    )
    if ck["path"]:
        Path(ck["path"]).unlink(missing_ok=True)  # finished: nothing left to resume
    resumed = f", {result.epochs_resumed} of them before a resume" if result.epochs_resumed else ""
    print(f"train: {tp['epochs']} epochs in {result.seconds:.1f} s{resumed} ({result.images_per_second:.1f} images/s)")


if __name__ == "__main__":
    cli.run(main, "train")
