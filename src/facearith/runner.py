"""Entry-point plumbing for the stages and the console command. It imports nothing heavy (no torch): a stage
that needs no network starts fast, and `facearith query` by names never loads torch.

The project's own errors (`FacearithError`: a bad parameter, a missing file, an unfinished pipeline) end in one
line naming what to fix; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from facearith.errors import FacearithError


def guard(name: str, main: Callable[[], None]) -> None:
    try:
        main()
    except FacearithError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output was written", file=sys.stderr)
        sys.exit(130)


def stage(name: str, main: Callable[[argparse.Namespace], None], doc: str | None, *paths: str) -> None:
    """Run a stage script: each of `paths` is a required `--name PATH` (dvc.yaml's cmd names every path)."""
    ap = argparse.ArgumentParser(prog=f"stages/{name}.py", description=doc)
    for path in paths:
        ap.add_argument(f"--{path}", required=True, metavar="PATH")
    args = ap.parse_args()
    guard(name, lambda: main(args))
