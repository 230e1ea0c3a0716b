"""bfloat16 on the CPU: is training faster where the CPU has native bfloat16 (AVX-512 BF16, Intel AMX)?

    python benchmarks/precision.py --archive jaffedbase.zip --out precision.json   # JAFFE defaults
    python benchmarks/precision.py --epochs 1 --rounds 1                            # the synthetic set, quick

Two measures, side by side in one run, on the defaults' network and batches:
- convolutions: every convolution call of one training epoch (input shapes recorded by hooks on a real epoch),
  each unique call timed forward and backward in float32 (`fp32`), in float32 with oneDNN's implicit bfloat16
  (`onednn_bf16`: torch.backends.mkldnn.conv.fp32_precision = "bf16", AMX tiles where the CPU has them) and
  on bfloat16 tensors (`bf16`: what autocast would run, without its casts), summed over the epoch's calls;
- training: `--epochs` epochs of the defaults in float32 and with oneDNN's implicit bfloat16, the two
  interleaved over `--rounds` rounds; each one's median epoch time and last loss (bfloat16 rounds, so the
  losses differ).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODES = ("fp32", "onednn_bf16", "bf16")


def implicit_bf16(on: bool) -> None:
    """oneDNN's implicit bfloat16 for float32 convolutions and matrix products (torch >= 2.9), or off."""
    import torch

    torch.backends.mkldnn.conv.fp32_precision = "bf16" if on else "none"
    torch.backends.mkldnn.matmul.fp32_precision = "bf16" if on else "none"


def record_convolutions(net, run: Callable[[], None]) -> Counter:
    """(input shape, in, out, kernel, stride, padding, groups) -> calls, of every Conv2d while `run` runs."""
    import torch

    calls: Counter = Counter()

    def hook(mod, inputs, _out) -> None:
        calls[(tuple(inputs[0].shape), mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0],
               mod.padding[0], mod.groups)] += 1  # fmt: skip

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return calls


def kind(key: tuple) -> str:
    """A convolution's kind, as profile_step.py names them: the first full 3x3, depthwise 3x3, pointwise 1x1."""
    _, cin, _, k, _, _, groups = key
    return "pointwise 1x1" if k == 1 else ("depthwise 3x3" if groups == cin and cin > 1 else "full 3x3")


def flops(key: tuple) -> float:
    """Multiply-adds x 2 of one call forward and backward (the backward is two such products: input, weight)."""
    shape, cin, cout, k, stride, pad, groups = key
    out_hw = [(h + 2 * pad - k) // stride + 1 for h in shape[2:]]
    return 3 * 2 * shape[0] * (cin // groups) * cout * k * k * out_hw[0] * out_hw[1]


def time_call(key: tuple, mode: str, reps: int) -> float:
    """Seconds of one forward and backward of the convolution `key` in `mode` (the median of `reps`)."""
    import torch

    shape, cin, cout, k, stride, pad, groups = key
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    conv = torch.nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False).to(dtype)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    implicit_bf16(mode == "onednn_bf16")
    times = []
    try:
        for i in range(reps + 2):  # two warm-ups: oneDNN builds its kernel on the first call of a shape
            t = time.perf_counter()
            conv(x).sum().backward()
            if i >= 2:
                times.append(time.perf_counter() - t)
    finally:
        implicit_bf16(False)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="", help="a jaffedbase.zip; default: the embedded synthetic set")
    ap.add_argument("--params", default=str(HERE.parent / "params.yaml"))
    ap.add_argument("--epochs", type=int, default=6, help="epochs of each training run")
    ap.add_argument("--rounds", type=int, default=2, help="training runs of each mode, interleaved")
    ap.add_argument("--reps", type=int, default=5, help="timed calls of each convolution")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import torch
    from run import emit, machine, training_rows

    from facearith import config
    from facearith.training import loop, members

    params = config.load(args.params)
    images, ids, attrs, n_i, n_a = training_rows(params, args.archive)
    cpu = torch.device("cpu")
    tp = replace(params.train, device="cpu", swa_from=0.0, recalibrate_bn=False)

    def fresh():
        return members.initial_member(params.model, tp.seed, tp.threads, n_i, n_a)

    net = fresh()
    calls = record_convolutions(
        net, lambda: loop.train(net, images, ids, attrs, replace(tp, epochs=1), cpu, progress=False)
    )
    by_kind: dict[str, dict[str, float]] = {}
    work: Counter = Counter()
    for key, n in calls.items():
        work[kind(key)] += n * flops(key)
        mine = by_kind.setdefault(kind(key), dict.fromkeys(MODES, 0.0))
        for m in MODES:
            mine[m] += n * time_call(key, m, args.reps)
    conv_s = {m: sum(k[m] for k in by_kind.values()) for m in MODES}

    training: dict[str, list[dict]] = {m: [] for m in MODES[:2]}
    for _ in range(args.rounds):
        for mode in training:
            net = fresh()
            implicit_bf16(mode == "onednn_bf16")
            try:
                result = loop.train(net, images, ids, attrs, replace(tp, epochs=args.epochs), cpu, progress=False)
            finally:
                implicit_bf16(False)
            epochs_s = result.epoch_seconds[1:] or result.epoch_seconds  # past the first (oneDNN's kernels)
            training[mode].append({"median_epoch_s": round(statistics.median(epochs_s), 3),
                                   "last_loss": round(result.losses[-1], 4)})  # fmt: skip
    median = {m: statistics.median(r["median_epoch_s"] for r in runs) for m, runs in training.items()}
    report = {
        "machine": machine(),
        "images": len(images),
        "conv_calls_per_epoch": sum(calls.values()),
        "conv_shapes": len(calls),
        "conv_epoch_s": {m: round(s, 3) for m, s in conv_s.items()},
        "conv_speedup_vs_fp32": {m: round(conv_s["fp32"] / s, 2) for m, s in conv_s.items()},
        "conv_epoch_s_by_kind": {k: {m: round(s, 3) for m, s in v.items()} for k, v in sorted(by_kind.items())},
        "conv_gflops_per_second_by_kind": {
            k: {m: round(work[k] / s / 1e9, 1) for m, s in v.items()} for k, v in sorted(by_kind.items())
        },
        "training": training,
        "median_epoch_s": {m: round(s, 3) for m, s in median.items()},
        "training_speedup_vs_fp32": {m: round(median["fp32"] / s, 2) for m, s in median.items()},
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
