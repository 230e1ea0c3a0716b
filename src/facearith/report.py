"""The generated results tables, so that no figure in the docs is typed by hand.

- README.md, between `<!-- headline:begin/end -->`: the defaults' grid groups (JAFFE's held-out images and
  zero-shot pairs, the synthetic held-out images), mean +- sd over seeds or folds, from results/grid.json;
- docs/results.md, between `<!-- results:begin/end -->`: the committed `dvc repro` (metrics/eval.json,
  metrics/train.json); between `<!-- grid:begin/end -->`: every grid group, those that `make grid` no longer
  produces marked as history. results/grid.json is what `python -m facearith.grid collect` writes.

`python -m facearith.report` rewrites them; `--check` only says whether they are current (the tests run that).
A user's own `make repro` rewrites metrics/ (another CPU trains another model), so the committed run's table is
current if it matches either the working tree's metrics or those committed at HEAD.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from facearith.grid import groups
from facearith.tables import (
    BEGIN,
    END,
    GRID_BEGIN,
    GRID_END,
    HEADLINE_BEGIN,
    HEADLINE_END,
    grid_tables,
    headline_table,
    render,
    results_table,
)

__all__ = ["grid_tables", "headline_table", "main", "render", "results_table"]


def _commit_before(root: Path, timestamp: str) -> str:
    """The newest commit before `timestamp` (a grid run's), which the run's code started from; '' outside git."""
    try:
        proc = subprocess.run(
            ["git", "log", "-1", "--format=%h", f"--before={timestamp}", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def produced_groups(makefile: Path) -> set[str] | None:
    """The group names that `make grid` runs, read off the Makefile; None where there is none."""
    if not makefile.is_file():
        return None
    return set(re.findall(r"facearith\.grid run (\S+)", makefile.read_text()))


def _committed(root: Path, name: str) -> str | None:
    """`name` as committed at HEAD; None outside git or where HEAD has no such file."""
    try:
        proc = subprocess.run(["git", "show", f"HEAD:./{name}"], cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def run_table(read: Callable[[str], str | None]) -> str | None:
    """The committed run's table from metrics/ and params.yaml as `read` gives them; None if one is missing."""
    import yaml

    texts = [read(name) for name in ("metrics/eval.json", "metrics/train.json", "params.yaml")]
    if any(t is None for t in texts):
        return None
    return results_table(json.loads(texts[0]), json.loads(texts[1]), yaml.safe_load(texts[2]))


def _without_commits(text: str) -> str:
    return re.sub(r", after commit [0-9a-f]+", "", text)


def _block(text: str, begin: str, end: str) -> str | None:
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=".", help="the pipeline's folder (default: here)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated table is not current")
    args = ap.parse_args(argv)
    root = Path(args.root)
    grid_path = root / "results/grid.json"
    runs = json.loads(grid_path.read_text())["runs"] if grid_path.exists() else []
    # the commit each group's runs started from (the runs' own commits are DVC's experiment refs, not kept)
    commits = {
        name: _commit_before(root, min(r["timestamp"] or "" for r in members)) for name, members in groups(runs).items()
    }
    produced = produced_groups(root / "Makefile")
    working = run_table(lambda name: (root / name).read_text() if (root / name).is_file() else None)
    at_head = run_table(lambda name: _committed(root, name))
    # a clone without the history (a shallow one) cannot name the commits: it checks the rest of the grid's text
    loose = not all(commits.values())
    # each block: the file, its markers, the tables it may hold as current (the first: the working tree's)
    blocks = [
        ("README.md", HEADLINE_BEGIN, HEADLINE_END, lambda: [headline_table(runs)], False),
        ("docs/results.md", BEGIN, END, lambda: [t for t in (working, at_head) if t is not None], False),
        ("docs/results.md", GRID_BEGIN, GRID_END, lambda: [grid_tables(runs, produced, commits)], loose),
    ]
    stale, found = [], 0
    for name, begin, end, tables, without_commits in blocks:
        path = root / name
        text = path.read_text() if path.is_file() else ""
        current = _block(text, begin, end)
        if current is None:
            continue
        found += 1
        candidates = tables()
        if not candidates:
            raise SystemExit(f"{path}: no metrics to render its '{begin}' table from; run `dvc repro`")
        if args.check:
            same = _without_commits if without_commits else str
            stale += [] if same(current) in {same(c) for c in candidates} else [name]
        elif current != candidates[0]:  # a rewrite writes the working tree's tables
            from facearith.fsutil import atomic_path

            with atomic_path(path) as tmp:
                tmp.write_text(render(text, candidates[0], begin, end))
    if not found:
        print(f"{root}: no generated-table markers in README.md or docs/results.md", file=sys.stderr)
        return 1
    if args.check and stale:
        print(
            f"{', '.join(sorted(set(stale)))}: the results tables are not current; run `make results`", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
