"""The generated results tables, so that no figure in the docs is typed by hand.

- README.md, between `<!-- headline:begin/end -->`: the defaults' grid groups (JAFFE's held-out images and
  zero-shot pairs, the synthetic held-out images), mean +- sd over seeds or folds;
- docs/results.md, between `<!-- grid:begin/end -->`: every grid group, those that `make grid` no longer runs
  marked as history, each with the commit its runs started from.
Both come from results/grid.json (what `python -m facearith.experiments.grid collect` writes), never from
metrics/: a user's own `make repro` rewrites metrics/ (another CPU trains another model) and commits it as their
baseline, and neither may make the docs stale.

`python -m facearith.experiments.report` rewrites them; `--check` only says whether they are current (the tests
run that); `--run` prints the table of the run in metrics/ instead (every protocol, every system it measured).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from facearith.experiments.grid import groups
from facearith.experiments.tables import (
    GRID_BEGIN,
    GRID_END,
    HEADLINE_BEGIN,
    HEADLINE_END,
    grid_tables,
    headline_table,
    render,
    results_table,
)
from facearith.fsutil import atomic_path


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
    return set(re.findall(r"facearith\.experiments\.grid run (\S+)", makefile.read_text()))


def run_table(root: Path) -> str:
    """The table of the run in `root`'s metrics/ and params.yaml."""
    read = [(root / name).read_text() for name in ("metrics/eval.json", "metrics/train.json", "params.yaml")]
    fuse = root / "metrics/fuse.json"  # stage fuse's weights; runs before it had none
    choice = json.loads(fuse.read_text()) if fuse.is_file() else None
    return results_table(json.loads(read[0]), json.loads(read[1]), yaml.safe_load(read[2]), fuse=choice)


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
    ap.add_argument("--run", action="store_true", help="print the table of the run in metrics/ and exit")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if args.run:
        print(run_table(root))
        return 0
    grid_path = root / "results/grid.json"
    runs = json.loads(grid_path.read_text())["runs"] if grid_path.exists() else []
    # the commit each group's runs started from (the runs' own commits are DVC's experiment refs, not kept)
    commits = {
        name: _commit_before(root, min(r["timestamp"] or "" for r in members)) for name, members in groups(runs).items()
    }
    produced = produced_groups(root / "Makefile")
    # a clone without the history (a shallow one) cannot name the commits: it checks the rest of the grid's text
    loose = not all(commits.values())
    # each block: the file, its markers, the table, and whether to compare it without the commits
    blocks = [
        ("README.md", HEADLINE_BEGIN, HEADLINE_END, headline_table(runs), False),
        ("docs/results.md", GRID_BEGIN, GRID_END, grid_tables(runs, produced, commits), loose),
    ]
    stale, found = [], 0
    for name, begin, end, table, without_commits in blocks:
        path = root / name
        text = path.read_text() if path.is_file() else ""
        current = _block(text, begin, end)
        if current is None:
            continue
        found += 1
        if args.check:
            same = _without_commits if without_commits else str
            stale += [] if same(current) == same(table) else [name]
        elif current != table:
            with atomic_path(path) as tmp:
                tmp.write_text(render(text, table, begin, end))
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
