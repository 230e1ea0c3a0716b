"""Where a CPU training step's time goes, by operator kind (torch.profiler, self CPU time).

    python benchmarks/profile_step.py --archive jaffedbase.zip --out profile.json     # JAFFE defaults, 3 epochs
    python benchmarks/profile_step.py --epochs 1 --legacy                            # the synthetic set, old path

One epoch warms up (oneDNN builds its kernels), then `--epochs` epochs of the defaults train under the profiler.
Each operator's self time goes to one kind: convolutions split by their weight's shape into the first full
3x3, depthwise 3x3 and pointwise 1x1 (forward and backward apart), BatchNorm, activations, the optimizer,
memory (allocation, fill, copy), the input path (resize, loader) and the rest. `--legacy` profiles the code
path before time_to_accuracy.py's `today` was retired: torch's NaN fill of new tensors and per-image inputs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

KINDS = {  # operator name -> kind, for the ones that are not convolutions
    "aten::native_batch_norm": "batchnorm",
    "aten::native_batch_norm_backward": "batchnorm",
    "aten::hardtanh": "activation",
    "aten::hardtanh_": "activation",
    "aten::hardtanh_backward": "activation",
    "aten::clamp": "activation",
    "aten::fill_": "memory",
    "aten::empty": "memory",
    "aten::empty_strided": "memory",
    "aten::empty_like": "memory",
    "aten::resize_": "memory",
    "aten::copy_": "memory",
    "aten::zero_": "memory",
    "aten::_upsample_bilinear2d_aa": "input",
    "aten::stack": "input",
    "aten::index": "input",
}


def conv_kind(name: str, shapes: list) -> str:
    """A convolution's kind from its weight's shape (out, in / groups, kh, kw): forward or backward."""
    weight = shapes[1] if name == "aten::mkldnn_convolution" else shapes[2]
    direction = "forward" if name == "aten::mkldnn_convolution" else "backward"
    if len(weight) != 4:
        return f"conv other {direction}"
    _, per_group, kh, _ = weight
    shape = "pointwise 1x1" if kh == 1 else ("depthwise 3x3" if per_group == 1 else "full 3x3")
    return f"conv {shape} {direction}"


def kind_of(name: str, shapes: list) -> str:
    if name in ("aten::mkldnn_convolution", "aten::convolution_backward"):
        return conv_kind(name, shapes)
    if name.startswith("Optimizer.") or name in ("aten::lerp_", "aten::addcdiv_", "aten::addcmul_", "aten::sqrt"):
        return "optimizer"  # Adam's foreach-free update is these elementwise ops, one per parameter
    if "DataLoader" in name:
        return "input"
    return KINDS.get(name, "other")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="", help="a jaffedbase.zip; default: the embedded synthetic set")
    ap.add_argument("--params", default=str(HERE.parent / "params.yaml"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--legacy", action="store_true")
    ap.add_argument("--set", default="", help="params overrides, 'train.batch_size=32;...'")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import torch
    from run import emit, machine, training_rows
    from time_to_accuracy import legacy_runtime, parse_recipe, with_overrides
    from torch.profiler import ProfilerActivity, profile

    from facearith import config
    from facearith.training import loop, members

    params = with_overrides(config.load(args.params), parse_recipe("x:" + args.set)[1] if args.set else {})
    images, ids, attrs, n_i, n_a = training_rows(params, args.archive)
    with legacy_runtime(args.legacy):
        tp = replace(params.train, swa_from=0.0, recalibrate_bn=False, device="cpu")
        net = members.initial_member(params.model, tp.seed, tp.threads, n_i, n_a)
        device = torch.device("cpu")
        warm = loop.train(net, images, ids, attrs, replace(tp, epochs=1), device, progress=False)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            result = loop.train(net, images, ids, attrs, replace(tp, epochs=args.epochs), device, progress=False)
    kinds: dict[str, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        k = kind_of(event.key, list(event.input_shapes or []))
        kinds[k] = kinds.get(k, 0.0) + event.self_cpu_time_total / 1e6
    total = sum(kinds.values())
    report = {
        "machine": machine(),
        "legacy": args.legacy,
        "set": args.set,
        "images": len(images),
        "epochs": args.epochs,
        "warm_up_epoch_s": round(warm.epoch_seconds[0], 3),
        "epoch_s": [round(s, 3) for s in result.epoch_seconds],
        "profiled_cpu_s": round(total, 3),
        "kinds": {
            k: {"s": round(v, 6), "share": round(v / total, 4)} for k, v in sorted(kinds.items(), key=lambda x: -x[1])
        },
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
