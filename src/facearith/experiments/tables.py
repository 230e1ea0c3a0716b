"""The results tables as markdown, from metrics and grid runs: pure functions, no files read.

- `results_table`: one run's metrics/eval.json, every protocol, each system it measured;
- `grid_tables`: each experiment group of results/grid.json, mean +- sd over its seeds or folds;
- `headline_table`: the defaults' groups only, the README's one table.
`facearith.experiments.report` decides where each goes and checks that the docs hold the current ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facearith.config import swa_first_epoch
from facearith.evaluation.registry import PROTOCOLS as REGISTRY
from facearith.evaluation.registry import Protocol
from facearith.experiments.grid import get, groups, mean_sd
from facearith.experiments.systems import (
    chosen,
    indexed,
    indexed_runs,
    measured,
    run_params,
    value,
    weights_text,
    with_choice,
)

GRID_BEGIN, GRID_END = "<!-- grid:begin -->", "<!-- grid:end -->"
HEADLINE_BEGIN, HEADLINE_END = "<!-- headline:begin -->", "<!-- headline:end -->"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def results_table(
    evaluation: dict[str, Any],
    training: dict[str, Any],
    params: dict[str, Any],
    protocols: Mapping[str, Protocol] = REGISTRY,
    fuse: dict[str, Any] | None = None,
) -> str:
    """A markdown table of top-1 (top-5) per protocol (the registry's), for each system the run measured (the
    indexed one first, with the weights stage fuse gave it: `fuse`, metrics/fuse.json)."""
    params = with_choice(params, fuse)
    data = params["data"]["source"]
    shown = measured([(evaluation, params)], [key + ".top1" for key in protocols])
    lines = [
        f"Data `{data}`, {training.get('epochs')} epochs in {training.get('seconds')} s on {training.get('device')}; "
        f"indexed: {indexed(evaluation, params)}.",
        "",
        "| protocol | queries | " + " | ".join(f"{name} top-1 (top-5)" for name in shown) + " |",
        "| --- | --- |" + " --- |" * len(shown),
    ]
    for key, protocol in protocols.items():
        label = protocol.label
        if get(evaluation, key) is None:
            continue
        cells = [
            f"{_rate(value(evaluation, params, name, key + '.top1'))} "
            f"({_rate(value(evaluation, params, name, key + '.top5'))})"
            for name in shown
        ]
        lines.append(f"| {label} | {get(evaluation, key + '.queries')} | " + " | ".join(cells) + " |")
    seed = get(evaluation, "composition_seed")
    if seed:
        lines += ["", f"The seed's protocol ({seed['queries']} random pairs): {_rate(seed['accuracy'])}."]
    return "\n".join(lines)


def render(text: str, table: str, begin: str, end: str) -> str:
    """`text` with `table` between its `begin` and `end` markers, in place of what was there."""
    if begin not in text or end not in text:
        raise ValueError(f"no '{begin}' ... '{end}' markers for a generated table")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


# (row label, key path in metrics/eval.json) of the grid tables: what was never trained on
GRID_PROTOCOLS = [
    ("composition, held-out images: top-1", "heldout_images.composition.top1"),
    ("composition, held-out images: top-5", "heldout_images.composition.top5"),
    ("composition, held-out images: top-10", "heldout_images.composition.top10"),
    ("transfer, held-out images: top-1", "heldout_images.transfer.top1"),
    ("person recognised, held-out images: top-1", "heldout_images.identity.top1"),
    ("expression recognised, held-out images: top-1", "heldout_images.attribute.top1"),
    ("composition, every image indexed: top-1", "gallery.composition.top1"),
    ("transfer, every image indexed: top-1", "gallery.transfer.top1"),
]


def _mean_sd(values: list[Any]) -> str:
    got = mean_sd(values)
    return "-" if got is None else f"{got[0]:.3f} +- {got[1]:.3f}"


def _recipe(params: dict[str, Any]) -> str:
    """'heads of 128, 160 epochs at 96 px, lr 0.001 constant, SWA over epochs 81-160, label smoothing 0.1': what
    a group's runs trained with (keys that its commit did not have yet are left out)."""
    epochs = get(params, "train.epochs")
    text = f"{epochs} epochs at {get(params, 'train.image_size')} px"
    if get(params, "model.embedding") == "split" and get(params, "model.dim") is not None:
        text = f"heads of {get(params, 'model.dim')}, " + text
    width = get(params, "model.width")
    if width is not None and width != 1:
        text = f"MobileNetV2 of width {width}, " + text
    members = get(params, "model.members")
    if members and members > 1:
        text = f"an ensemble of {members} networks (each: {text}"
    if get(params, "train.lr") is not None:
        text += f", lr {get(params, 'train.lr')}" + (
            f" {get(params, 'train.schedule')}" if get(params, "train.schedule") else ""
        )
    swa = get(params, "train.swa_from")
    if swa and isinstance(epochs, int):
        text += f", SWA over epochs {swa_first_epoch(epochs, swa) + 1}-{epochs}"
    if get(params, "train.label_smoothing"):
        text += f", label smoothing {get(params, 'train.label_smoothing')}"
    if get(params, "final.start") == "inner":  # train.* trained stage fuse's network, which the index's continues
        text += f", the index's network continued from stage fuse's for {get(params, 'final.epochs')} epochs"
    return text + ")" if members and members > 1 else text


def _when(members: list[dict[str, Any]], commit: str = "") -> str:
    """'run 2026-11-30, after commit 6684c2b': when a group ran, and the code it started from."""
    first = min((r["timestamp"] or "" for r in members), default="")
    if not first:
        return "run at an unrecorded time"
    return f"run {first[:10]}" + (f", after commit {commit}" if commit else "")


def grid_tables(
    runs: list[dict[str, Any]], produced: set[str] | None = None, commits: dict[str, str] | None = None
) -> str:
    """One table per experiment group: each protocol's mean +- sd over the group's runs, for each system it
    measured, and what varied, the data, the training time, the CPU, what was indexed and when it ran (after
    `commits[group]`, where given). Groups not in `produced` (what `make grid` runs; None: all) are history."""
    if not runs:
        return "No experiment grid has been collected yet (`make grid`)."
    parts = []
    for name, members in groups(runs).items():
        first = members[0]
        varied = ", ".join(str(r["value"]) for r in members)
        seconds = mean_sd([get(r["train"], "seconds") for r in members])
        took = "-" if seconds is None else f"{seconds[0]:.0f} +- {seconds[1]:.0f} s"
        split = f"`{get(first['params'], 'prepare.split')}`"
        if get(first["params"], "prepare.seed"):  # another draw of the held-out images or folds than the others'
            split += f" (prepare.seed {get(first['params'], 'prepare.seed')})"
        queries = sorted({get(r["eval"], "heldout_images.composition.queries") for r in members} - {None})
        shown = measured([(r["eval"], run_params(r)) for r in members], [key for _, key in GRID_PROTOCOLS])
        history = " (history: `make grid` no longer runs it)" if produced is not None and name not in produced else ""
        parts += [
            f"**{name}**{history}: data `{get(first['params'], 'data.source')}`, split {split}, "
            f"{_recipe(first['params'])}, "
            f"{len(members)} runs ({first['vary']} {varied}), {'/'.join(map(str, queries)) or 'no'} held-out "
            f"composition queries per run; training {took} per run on {first['machine'] or 'an unrecorded CPU'}; "
            f"indexed: {indexed_runs(members)}; {_when(members, (commits or {}).get(name, ''))}.",
            "",
            "| protocol (mean +- sd) | " + " | ".join(shown) + " |",
            "| --- |" + " --- |" * len(shown),
        ]
        for label, key in GRID_PROTOCOLS:
            cells = [_mean_sd([value(r["eval"], run_params(r), name, key) for r in members]) for name in shown]
            if all(c == "-" for c in cells):
                continue
            parts.append(f"| {label} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts).rstrip()


# the README's one table: (row label, grid group) of the defaults, each protocol on what was never trained on
HEADLINE = [
    ("JAFFE, held-out images", "jaffe"),
    ("JAFFE, pairs never trained on", "jaffe-pairs"),
    ("synthetic, held-out images", "synthetic"),
]
HEADLINE_KEYS = [("composition", "heldout_images.composition.top1"), ("transfer", "heldout_images.transfer.top1")]


def _each_once(texts: list[str]) -> str:
    return "; ".join(dict.fromkeys(texts))  # in order of appearance


def headline_table(runs: list[dict[str, Any]]) -> str:
    """Top-1 of composition and transfer, mean +- sd over each default group's seeds (or folds), for every system
    measured, then what each group trained, how long and on which CPU."""
    found = groups(runs)
    present = [(label, group, found[group]) for label, group in HEADLINE if group in found]
    if not present:
        return "No experiment grid has been collected yet (`make grid`)."
    every = [(r["eval"], run_params(r)) for _, _, members in present for r in members]
    shown = measured(every, [key for _, key in HEADLINE_KEYS])
    weighed = any(chosen(run_params(r)) for _, _, members in present for r in members)
    lines = [
        "| data, protocol: top-1, mean +- sd | runs | "
        + " | ".join(shown)
        + " |"
        + (" weights per run (identity / attribute) |" if weighed else ""),
        "| --- | --- |" + " --- |" * (len(shown) + weighed),
    ]
    took, machines, held = [], [], []
    for label, group, members in present:
        weights = [", ".join(weights_text(r) for r in members)] if weighed else []
        for what, key in HEADLINE_KEYS:
            cells = [_mean_sd([value(r["eval"], run_params(r), name, key) for r in members]) for name in shown]
            cells += weights
            lines.append(f"| {label}: {what} | {len(members)} {members[0]['vary']}s | " + " | ".join(cells) + " |")
        took.append(f"`{group}` " + _seconds(members))
        machines += [r["machine"] or "an unrecorded CPU" for r in members]
        held += [indexed(r["eval"], run_params(r), weights=False) for r in members]
    return "\n".join(
        [
            *lines,
            "",
            f"Training per run (the `make grid` groups; with the weights' inner network where it ran): "
            f"{', '.join(took)}, on {_each_once(machines)}. Indexed: {_each_once(held)}.",
        ]
    )


def _seconds(members: list[dict[str, Any]]) -> str:
    """Training seconds per run, mean +- sd: the network's and, where stage fuse trained one, its inner network's."""
    total = mean_sd([_plus(get(r["train"], "seconds"), get(r.get("fuse") or {}, "inner.seconds")) for r in members])
    if total is None:
        return "-"
    inner = mean_sd([get(r.get("fuse") or {}, "inner.seconds") for r in members])
    part = "" if inner is None else f", of which the inner network {inner[0]:.0f} s"
    return f"{total[0]:.0f} +- {total[1]:.0f} s{part}"


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None else a + (b or 0.0)
