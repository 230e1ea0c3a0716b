"""Seconds per training epoch, epoch by epoch, under process-level variants: where a device's time goes.

On an H200 the defaults' epochs took 0.4-0.5 s once warm, but a fresh run stalled for 4-37 s in its second
to fourth epochs (benchmarks/README.md, GPU). This script shows such stalls and tests what removes them:
each variant trains a fresh network for `--epochs` epochs in this process and reports every epoch's seconds.

    python benchmarks/epochs.py --archive jaffedbase.zip --out epochs.json        # JAFFE, CUDA, every variant
    python benchmarks/epochs.py --device cpu --epochs 2 --variants base,nodet      # the synthetic set, a smoke run

Variants (names joined by '-'): base (as the pipeline trains, without checkpoints), nodet (torch's deterministic
algorithms off), bench (cuDNN autotuning on), nocudnn (cuDNN off: torch's own CUDA kernels; since these
measurements training always runs with cuDNN off, so bench and nocudnn no longer change it), noamp (float32
instead of bfloat16 autocast), t4 (4 CPU threads), ck (checkpoints as the pipeline writes them, `checkpoint.every_s`
apart), ck0 (a checkpoint after every epoch). A shape's first use is cached for the whole process, so a variant
run after others inherits their warm caches: compare variants each in a fresh process (benchmarks/device.sh).
Each variant reports its epochs' seconds, their median over the second half (warm) and their sum (checkpoints
included: with `ck` most epochs write none, so only the sum shows their cost).

    python benchmarks/epochs.py --device cpu --archive jaffedbase.zip --epochs 20 --variants base,ck,ck0
With --full N, the variant that would finish N epochs first then trains N epochs per seed and reports held-out
composition and transfer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = "base,nodet,nodet-bench,nodet-noamp,nodet-t4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--archive", default="", help="a jaffedbase.zip; default: the embedded synthetic set")
    ap.add_argument("--params", default=str(HERE.parent / "params.yaml"))
    ap.add_argument("--variants", default=VARIANTS)
    ap.add_argument("--epochs", type=int, default=6, help="epochs per variant")
    ap.add_argument("--full", type=int, default=0, help="then train the fastest variant this many epochs per seed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--stop-after", type=float, default=0.0, help="start no full run after this many seconds")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import torch
    from run import dataset, machine, warm_epoch_seconds

    from facearith import config
    from facearith.evaluation import run as evaluation
    from facearith.features import extract
    from facearith.training import loop, members, network

    start = time.perf_counter()
    params = config.load(args.params)
    device = network.resolve_device(args.device)
    report: dict = {"machine": machine(), "device": str(device)}

    def log(key: str, value) -> None:
        report[key] = value
        print(key, json.dumps(value), flush=True)
        if args.out:  # after every entry, so that a run cut short still leaves what it measured
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        table, images = dataset(params, args.archive, tmp)
        threads = torch.get_num_threads()
        seed_everything = loop.seed_everything

        def variant(name: str) -> config.TrainParams:
            def seeded(seed: int, n: int = 0) -> None:
                seed_everything(seed, n)
                torch.use_deterministic_algorithms("nodet" not in name, warn_only=True)
                torch.backends.cudnn.benchmark = "bench" in name
                torch.backends.cudnn.enabled = "nocudnn" not in name
                torch.set_num_threads(4 if "t4" in name else threads)

            loop.seed_everything = seeded  # train_selected seeds through it
            return replace(params.train, amp="noamp" not in name)

        def run(name: str, epochs: int, seed: int = 0):
            parts = name.split("-")
            ck = {}
            if "ck" in parts or "ck0" in parts:
                every = 0.0 if "ck0" in parts else params.checkpoint.every_s
                ck = {"checkpoint": Path(tmp) / f"{name}.pt", "checkpoint_every_s": every}
            t = time.perf_counter()
            net, result = members.train_selected(
                table, params.model, replace(variant(name), epochs=epochs, seed=seed), device, progress=False, **ck
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            return net, result, time.perf_counter() - t

        # a fresh process's first epoch, under the first variant (each shape's first use costs; see the docstring)
        first = args.variants.split(",")[0]
        _, result, _ = run(first, 1)
        log("cold_first_epoch_s", {"variant": first, "s": round(result.epoch_seconds[0], 3)})
        warm: dict[str, float] = {}
        sums: dict[str, float] = {}
        for name in args.variants.split(","):
            _, result, _ = run(name, args.epochs)
            seconds = result.epoch_seconds
            warm[name] = warm_epoch_seconds(seconds)
            sums[name] = sum(seconds)
            timed = {"warm_epoch_s": round(warm[name], 3), "sum_s": round(sum(seconds), 3)}
            log(f"epochs_{name}", {**timed, "epoch_s": [round(x, 3) for x in seconds]})
        # the variant that would train --full epochs soonest: its measured epochs, stalls included, then warm ones
        projected = {k: sums[k] + warm[k] * max(args.full - args.epochs, 0) for k in warm}
        best = min(projected, key=projected.get)
        log("fastest", best)
        for seed in [int(s) for s in args.seeds.split(",")] if args.full else []:
            if args.stop_after and time.perf_counter() - start > args.stop_after:
                log(f"full_seed{seed}", "not run: --stop-after")
                break
            net, result, seconds = run(best, args.full, seed)
            feats = extract.extract(net, images, params.train.image_size, params.features.batch_size, device=device)
            held = evaluation.nest(evaluation.measure(feats, table, 10), [1])["heldout_images"]
            log(
                f"full_seed{seed}",
                {
                    "variant": best,
                    "train_s": round(seconds, 1),
                    "first_epoch_s": round(result.epoch_seconds[0], 3),
                    "median_epoch_s": round(statistics.median(result.epoch_seconds), 3),
                    "max_later_epoch_s": round(max(result.epoch_seconds[1:], default=0.0), 3),
                    "composition_top1": held["composition"]["top1"],
                    "transfer_top1": held["transfer"]["top1"],
                },
            )
    log("total_s", round(time.perf_counter() - start, 1))


if __name__ == "__main__":
    main()
