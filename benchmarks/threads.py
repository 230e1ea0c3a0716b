"""Two cores, two ways: one training process of two threads, against two processes of one thread each at once.

Would training data-parallel over single-thread processes, or the pipeline's two networks (stage train's and
stage fuse's inner one) trained side by side, finish sooner than one after another with two threads each? Only
if a step's two threads use the cores worse than two processes do. Each way trains the defaults for a few epochs
on the same data; the figure is the median epoch after the first, and the ratio is the time to train two
networks: two epochs one after another at two threads against one epoch of the pair at once.

    python benchmarks/threads.py --epochs 5                        # the synthetic default (about 2 minutes)
    python benchmarks/threads.py --archive jaffedbase.zip --out t.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def epochs_of(threads: int, epochs: int, archive: str, params: str) -> list[float]:
    """Each epoch's seconds of one run of the defaults with `threads` torch threads, in this process."""
    from dataclasses import replace

    import torch
    from run import training_rows

    from facearith import config
    from facearith.training import members

    p = config.load(params)
    images, ids, attrs, n_i, n_a = training_rows(p, archive)
    tp = replace(p.train, threads=threads, epochs=epochs)
    _, result = members.train_members(images, ids, attrs, (n_i, n_a), p.model, tp, torch.device("cpu"), progress=False)
    return result.epoch_seconds


def workers(count: int, threads: int, args: argparse.Namespace) -> list[list[float]]:
    """`count` processes at once, each training with `threads` threads; each one's epoch seconds."""
    cmd = [sys.executable, __file__, "--worker", str(threads), "--epochs", str(args.epochs), "--params", args.params]
    procs = [
        subprocess.Popen([*cmd, "--archive", args.archive], stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    out = []
    for proc in procs:
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"threads: a worker failed (exit {proc.returncode})")
        out.append(json.loads(stdout.splitlines()[-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="", help="a jaffedbase.zip; default: the embedded synthetic set")
    ap.add_argument("--params", default=str(HERE.parent / "params.yaml"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", default="")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(epochs_of(args.worker, args.epochs, args.archive, args.params)))
        return
    from run import machine

    start = time.perf_counter()
    report: dict = {"machine": machine(), "data": "jaffe" if args.archive else "synthetic", "epochs": args.epochs}
    ways = {
        "one_process_2_threads": lambda: [epochs_of(2, args.epochs, args.archive, args.params)],  # this process
        "two_processes_1_thread": lambda: workers(2, 1, args),
    }
    for name, way in ways.items():
        runs = way()
        report[name] = {"epoch_s": [[round(s, 3) for s in r] for r in runs]}
        report[name]["median_epoch_s"] = round(statistics.median(s for r in runs for s in r[1:]), 3)
    one, two = report["one_process_2_threads"]["median_epoch_s"], report["two_processes_1_thread"]["median_epoch_s"]
    # two networks: 2 epochs in a row at 2 threads, against the pair's one epoch side by side
    report["two_networks_side_by_side_vs_in_a_row"] = round(two / (2 * one), 3)
    report["total_s"] = round(time.perf_counter() - start, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
