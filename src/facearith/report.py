"""The README's results table, generated from the committed metrics so that no figure in it is typed by hand.

`python -m facearith.report` rewrites the table between the README's markers; `--check` only says whether
it is current (the tests run that).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# (row label, key path in metrics/eval.json)
PROTOCOLS = [
    ("composition (trained images)", "composition"),
    ("transfer (trained images)", "transfer"),
    ("composition, held-out images", "heldout_images.composition"),
    ("transfer, held-out images", "heldout_images.transfer"),
    ("composition, every image indexed", "gallery.composition"),
    ("transfer, every image indexed", "gallery.transfer"),
]
SYSTEMS = [
    ("network", ""),
    ("PCA + LDA", "baseline_linear."),
    ("untrained network", "baseline_untrained."),
    ("raw pixels", "baseline_pixels."),
]


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def results_table(evaluation: dict[str, Any], training: dict[str, Any], params: dict[str, Any]) -> str:
    """A markdown table of top-1 (top-5) per protocol, for the network and both baselines."""
    data = params["data"]["source"]
    lines = [
        f"Data `{data}`, {training.get('epochs')} epochs in {training.get('seconds')} s on {training.get('device')}.",
        "",
        "| protocol | queries | " + " | ".join(f"{name} top-1 (top-5)" for name, _ in SYSTEMS) + " |",
        "| --- | --- |" + " --- |" * len(SYSTEMS),
    ]
    for label, key in PROTOCOLS:
        if _get(evaluation, key) is None:
            continue
        cells = [
            f"{_rate(_get(evaluation, prefix + key + '.top1'))} ({_rate(_get(evaluation, prefix + key + '.top5'))})"
            for _, prefix in SYSTEMS
        ]
        lines.append(f"| {label} | {_get(evaluation, key + '.queries')} | " + " | ".join(cells) + " |")
    seed = _get(evaluation, "composition_seed")
    if seed:
        lines += ["", f"The seed's protocol ({seed['queries']} random pairs): {_rate(seed['accuracy'])}."]
    return "\n".join(lines)


def render(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"the README has no '{BEGIN}' ... '{END}' markers for the results table")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=".", help="the pipeline's folder (default: here)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README's table is not current")
    args = ap.parse_args(argv)
    import yaml

    root = Path(args.root)
    table = results_table(
        json.loads((root / "metrics/eval.json").read_text()),
        json.loads((root / "metrics/train.json").read_text()),
        yaml.safe_load((root / "params.yaml").read_text()),
    )
    readme_path = root / "README.md"
    readme = readme_path.read_text()
    new = render(readme, table)
    if args.check:
        if new != readme:
            print(f"{readme_path}: the results table is not current; run `make results`", file=sys.stderr)
            return 1
        return 0
    if new != readme:
        from facearith.fsutil import atomic_path

        with atomic_path(readme_path) as tmp:
            tmp.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
