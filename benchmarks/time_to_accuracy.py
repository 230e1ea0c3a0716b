"""Time to accuracy: training recipes side by side in one run, each to its held-out composition and transfer.

The measure of a faster recipe is not images/s but the wall time of training until the held-out accuracy of
today's recipe is reached (as in DAWNBench). Each recipe trains on the same data, one seed after another,
the recipes interleaved seed by seed (so that a machine's drift over minutes hits each alike), and is judged
on the images it never saw: the network alone (`network`) and the indexed system (the network beside
PCA + LDA, fused as the features stage fuses them), composition and transfer top-1 on held-out images. The
indexed system's weights come as the pipeline's do: with `features.fuse: inner` (the defaults) stage fuse's rule
trains its inner network on part of the training images, and that time is counted (`inner_s`; `time_s` is both
trainings, the time `make repro` spends); with `fixed`, params' `features.fuse_weight`.

    python benchmarks/time_to_accuracy.py --archive jaffedbase.zip --out tta.json            # JAFFE, 3 seeds
    python benchmarks/time_to_accuracy.py --recipes defaults --seeds 0 --scale 0.05           # a smoke run
    python benchmarks/time_to_accuracy.py --archive z.zip --recipes 'defaults,b32:train.batch_size=32'

Recipes: `today`, the recipe and code path committed before this benchmark existed (160 epochs, params' fixed
fuse weights, and the per-image input path with torch's NaN fill of new tensors, both since removed), `defaults`
(params.yaml as it is), or `name:key=value;key=value` over params.yaml (keys as `-S` takes them: train.epochs=80).
With `final.start: inner` (the defaults) the final network is stage fuse's inner network continued for
`final.epochs` on all the training images, as stage train continues it; `final.start=scratch` trains it anew for
`train.epochs`. Recipes whose params differ only in `final.*` share one inner network per seed, trained once and
timed once. `--scale` multiplies every recipe's epochs (for tests).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# the training recipe of commit 2dd16ee, the last before this benchmark; `legacy` brings back its runtime. Its index
# had params' fixed weights: stage fuse's inner rule came later (issue 29)
TODAY = (
    "today:train.epochs=160;train.batch_size=16;train.lr=0.001;train.schedule=constant;train.swa_from=0.5;"
    "features.fuse=fixed;final.start=scratch;legacy=1"
)


def parse_recipe(spec: str) -> tuple[str, dict[str, object]]:
    """'name:key=value;...' (or a bare name: no overrides) to (name, {key: value})."""
    if spec == "today":
        spec = TODAY
    name, _, rest = spec.partition(":")
    over: dict[str, object] = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        try:
            over[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            over[key.strip()] = value.strip()
    return name, over


def with_overrides(params, over: dict[str, object]):
    """params (config.Params) with 'section.key' overrides applied, validated as params.yaml is."""
    from facearith import config, settings
    from facearith.errors import ConfigError

    raw = settings.as_dict(params)
    for key, value in over.items():
        if key == "legacy":
            continue
        node = raw
        *head, last = key.split(".")
        for h in head:
            node = node[h]
        if last not in node:
            raise SystemExit(f"time_to_accuracy: unknown parameter {key!r}")
        node[last] = value
    try:
        return config.validate(raw)
    except ConfigError as exc:
        raise SystemExit(f"time_to_accuracy: {exc}") from None


@contextlib.contextmanager
def legacy_runtime(on: bool) -> Iterator[None]:
    """Within it, today's runtime when `on`: the NaN fill of new tensors and the per-image input path."""
    import torch

    from facearith.training import loop

    if not on:
        yield
        return
    static, seed = loop.is_static, loop.seed_everything

    def seeded(s: int, threads: int = 0) -> None:
        seed(s, threads)
        torch.utils.deterministic.fill_uninitialized_memory = True

    loop.is_static, loop.seed_everything = (lambda augment: False), seeded
    try:
        yield
    finally:
        loop.is_static, loop.seed_everything = static, seed
        torch.utils.deterministic.fill_uninitialized_memory = False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="", help="a jaffedbase.zip; default: the embedded synthetic set")
    ap.add_argument("--params", default=str(HERE.parent / "params.yaml"))
    ap.add_argument("--recipes", default="today,defaults")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every recipe's epochs (tests: 0.01)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import numpy as np
    import torch
    from run import dataset, machine

    from facearith import config, settings
    from facearith.evaluation import run as evaluation
    from facearith.features import extract, fusion, linear
    from facearith.training import members, network

    start = time.perf_counter()
    base = config.load(args.params)
    device = network.resolve_device(args.device)
    recipes = dict(parse_recipe(s) for s in args.recipes.split(","))
    chosen = {}
    for name, over in recipes.items():  # a bad key or combination fails here, before any training
        try:
            chosen[name] = with_overrides(base, over)
        except SystemExit as exc:
            raise SystemExit(f"{exc} (recipe {name})") from None
    report: dict = {"machine": machine(), "device": str(device), "data": "jaffe" if args.archive else "synthetic"}
    report["recipes"] = dict(recipes)
    runs: dict[str, list[dict]] = {name: [] for name in recipes}

    def save() -> None:
        if args.out:  # after every run, so that a run cut short still leaves what it measured
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        table, images = dataset(base, args.archive, tmp)
        sel = table.selected.to_numpy()
        rows = np.flatnonzero(sel)
        fit_imgs = [images[i] for i in rows]
        fit_ids, fit_attrs = table.identity.iloc[rows].to_numpy(), table.attribute.iloc[rows].to_numpy()
        lin, _ = linear.fit_images(fit_imgs, fit_ids, fit_attrs, base.linear.size)
        labels = (table.identity.nunique(), table.attribute.nunique())
        inner_cache: dict[tuple[int, str], tuple] = {}  # (seed, params but final) -> (choice, inner network)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for name, over in recipes.items():
                p = chosen[name]
                tp = replace(p.train, seed=seed, epochs=max(1, round(p.train.epochs * args.scale)))
                final = replace(tp, epochs=max(1, round(p.final.epochs * args.scale)))
                with legacy_runtime(bool(over.get("legacy"))):
                    # the weights as stage fuse gives them: inner trains its network on the recipe's params too,
                    # and records its seconds (fixed: none); final.* does not change it
                    shared = {k: v for k, v in settings.as_dict(replace(p, train=tp)).items() if k != "final"}
                    ident = (seed, json.dumps(shared, sort_keys=True))
                    if ident not in inner_cache:
                        inner_cache[ident] = fusion.decide(table, replace(p, train=tp), device)
                    choice, inner_net = inner_cache[ident]
                    inner_s = float(choice.inner.get("seconds", 0.0))
                    t = time.perf_counter()
                    if p.final.start == "inner":  # as stage train continues it, on a copy kept apart per recipe
                        starts = network.members_of(copy.deepcopy(inner_net))
                        net, result = members.train_members(
                            fit_imgs, fit_ids, fit_attrs, labels, p.model, final, device, starts=starts, progress=False
                        )
                    else:
                        net, result = members.train_selected(table, p.model, tp, device, progress=False)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    seconds = time.perf_counter() - t
                indexed, alone = extract.embed(
                    net, tp.image_size, lin, choice.pair(), images, p.features.batch_size, device
                )
                epochs = final.epochs if p.final.start == "inner" else tp.epochs
                entry = {"seed": seed, "epochs": epochs, "train_s": round(seconds, 1)}
                entry |= {"inner_s": round(inner_s, 1), "time_s": round(seconds + inner_s, 1)}
                entry["weights"] = {"rule": choice.rule, "identity": choice.identity, "attribute": choice.attribute}
                entry["images_per_second"] = round(result.images_per_second, 1)
                # a stall shows as a later epoch far above the median (a GPU's first uses of each batch shape)
                epochs_s = result.epoch_seconds
                entry["first_epoch_s"] = round(epochs_s[0], 3)
                entry["median_epoch_s"] = round(statistics.median(epochs_s), 3)
                entry["max_later_epoch_s"] = round(max(epochs_s[1:], default=0.0), 3)
                for what, feats in (("indexed", indexed), ("network", alone)):
                    held = evaluation.nest(evaluation.measure(feats, table, 10), [1])["heldout_images"]
                    entry[what] = {k: round(held[k]["top1"], 4) for k in ("composition", "transfer")}
                runs[name].append(entry)
                print(name, json.dumps(entry), flush=True)
                report["runs"] = runs
                report["summary"] = summary(runs)
                save()
    report["total_s"] = round(time.perf_counter() - start, 1)
    save()
    print(json.dumps(report["summary"], indent=1))


def _mean_sd(xs: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(xs), 4), "sd": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0}


def summary(runs: dict[str, list[dict]]) -> dict:
    """Per recipe: mean +- sd of the times and of each held-out figure; the ratio of both trainings' time
    (`time_vs_`) and of the network's alone (`train_vs_`) to the first recipe's."""
    out: dict = {}
    first = next(iter(runs))
    for name, entries in runs.items():
        if not entries:
            continue
        row = {"seeds": len(entries)}
        row |= {k: _mean_sd([e[k] for e in entries]) for k in ("train_s", "inner_s", "time_s")}
        row["images_per_second"] = _mean_sd([e["images_per_second"] for e in entries])
        for what in ("indexed", "network"):
            for k in ("composition", "transfer"):
                row[f"{what}.{k}"] = _mean_sd([e[what][k] for e in entries])
        out[name] = row
    if runs[first]:
        for row in out.values():
            row["time_vs_" + first] = round(row["time_s"]["mean"] / out[first]["time_s"]["mean"], 3)
            row["train_vs_" + first] = round(row["train_s"]["mean"] / out[first]["train_s"]["mean"], 3)
    return out


if __name__ == "__main__":
    main()
