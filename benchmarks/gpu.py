"""The seed's configuration on an accelerator, timed end to end: JAFFE-sized data (70 training images of 213),
256 px, the seed's augmentations, 50 epochs, batch 16, then features of every image and the NGT index.

    python benchmarks/gpu.py                      # CUDA: the project's loop (bf16 autocast, channels_last, workers)
    python benchmarks/gpu.py --seed-epochs 5      # also the seed's loop on the same device, for a few epochs
    python benchmarks/gpu.py --device cpu --epochs 1 --size 64   # a smoke run anywhere

Prints seconds per phase and images/s, and writes the figures as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, make_images, seed_recipe, warm_epoch_seconds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=4, help="augmenting processes (train.workers)")
    ap.add_argument("--seed-epochs", type=int, default=0, help="also time the seed's loop for this many epochs")
    ap.add_argument("--out", default="", help="write the figures here as JSON")
    args = ap.parse_args()

    import pandas as pd
    import torch

    from facearith import config
    from facearith.data.images import load_images
    from facearith.features import extract
    from facearith.search import backends
    from facearith.training import loop, network

    device = network.resolve_device(args.device)
    report: dict = {"machine": machine(), "device": str(device), "epochs": args.epochs, "size": args.size}
    phases: dict[str, float] = {}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        table = pd.read_csv(make_images(Path(tmp) / "images", size=256))
        selected = table[table.selected].reset_index(drop=True)
        images = load_images(selected.path.tolist())
        phases["data_s"] = time.perf_counter() - t

        committed = config.load(HERE.parent / "params.yaml")
        params = seed_recipe(committed.train, args.size, args.epochs, margin=1.0, ce_weight=0.0, workers=args.workers)
        loop.seed_everything(0)
        net = network.build(replace(committed.model, embedding="seed"), 70)
        t = time.perf_counter()
        result = loop.train(
            net, images, selected.person.to_numpy(), selected.expression.to_numpy(), params, device, progress=False
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        phases["train_s"] = time.perf_counter() - t
        report["train_images_per_second"] = result.images_seen / phases["train_s"]
        report["train_anchors_per_second"] = result.anchors_seen / phases["train_s"]
        # a device's first epochs can stall on each new batch shape (benchmarks/README.md, GPU): the warm
        # rate shows the steady speed beside the whole run's
        seconds = result.epoch_seconds
        report["train_epoch_s"] = [round(x, 3) for x in seconds]
        report["train_warm_images_per_second"] = result.images_seen / len(seconds) / warm_epoch_seconds(seconds)

        t = time.perf_counter()
        all_images = load_images(table.path.tolist())
        batch_size = committed.features.batch_size
        feats = extract.extract(net, all_images, args.size, batch_size=batch_size, device=device)
        phases["extract_s"] = time.perf_counter() - t
        report["extract_images_per_second"] = len(feats) / phases["extract_s"]

        t = time.perf_counter()
        backends.build(feats, Path(tmp) / "index", committed.index, {})
        phases["index_s"] = time.perf_counter() - t

        if args.seed_epochs:
            import seed_way

            seed = seed_way.train_images_per_second(selected, args.size, args.seed_epochs + 1, device=device)
            report["seed_loop"] = seed
            report["ratio_train"] = round(report["train_anchors_per_second"] / seed["anchors_per_second"], 2)
            report["ratio_train_forward"] = round(report["train_images_per_second"] / seed["images_per_second"], 2)
    phases["total_s"] = time.perf_counter() - t_all
    report.update({k: round(v, 2) for k, v in phases.items()})
    for key, value in report.items():
        print(f"{key}: {value}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
