"""Shared entry-point plumbing: known failures end in one clear line and a non-zero exit, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from facearith.config import ConfigError
from facearith.data import DataError
from facearith.index import IndexMissingError
from facearith.model import ModelError

KNOWN_ERRORS = (ConfigError, DataError, ModelError, IndexMissingError, ValueError, FileNotFoundError)


def run(main: Callable[[], None], name: str) -> None:
    try:
        main()
    except KNOWN_ERRORS as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        sys.exit(130)
