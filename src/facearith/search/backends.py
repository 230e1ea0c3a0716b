"""The one interface to search: an index folder is built by a backend (index.backend) and opened by whichever
backend built it, as settings.json beside it says. The index stage, evaluate and `facearith query` use only this
module; a new backend is one module with `write` and `open_searcher`, and one entry in BACKENDS."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from facearith.config import IndexParams
from facearith.errors import ConfigError, IndexMissingError
from facearith.fsutil import atomic_dir
from facearith.search import exact, ngt
from facearith.settings import as_dict

SETTINGS = "settings.json"  # beside the index: what shaped it, so that a search runs as the pipeline's did
BACKENDS: dict[str, ModuleType] = {"ngt": ngt, "exact": exact}


class Searcher(Protocol):
    """Nearest neighbours by L2 distance: `search` returns (ids, distances), each (Q, k), ids -1 past the end."""

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def backend(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ConfigError(f"params: 'index.backend' is {name!r}; allowed: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def build(vectors: np.ndarray, dest: str | os.PathLike, p: IndexParams, extra: dict[str, Any]) -> Path:
    """An index of `vectors` (id = row number) in `dest`, whole or not at all, by `p.backend`; settings.json
    beside it holds `p` (the backend and its settings), the vectors' shape and `extra` (what the caller wants a
    search to know, e.g. the fuse weights and the checksums of the files the vectors came from)."""
    module = backend(p.backend)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"need a non-empty (N, D) array of features, got shape {vectors.shape}")
    settings = {**as_dict(p), "rows": int(vectors.shape[0]), "dimensions": int(vectors.shape[1]), **extra}
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        module.write(vectors, tmp, p)
        (tmp / SETTINGS).write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
    return dest


def read_settings(folder: str | os.PathLike) -> dict[str, Any]:
    """The settings an index folder was built with (`build`)."""
    file = Path(folder) / SETTINGS
    if not file.is_file():
        raise IndexMissingError(
            f"{file} not found: the index was built before it recorded its settings; run `dvc repro`"
        )
    try:
        settings = json.loads(file.read_text())
    except ValueError as exc:
        raise IndexMissingError(f"{file} is not readable JSON ({exc}); run `dvc repro --force index`") from None
    if settings.get("backend") not in BACKENDS:
        raise IndexMissingError(f"{file} names no known backend ({settings.get('backend')!r}); run `dvc repro index`")
    return settings


def open_index(folder: str | os.PathLike, settings: dict[str, Any] | None = None) -> Searcher:
    """The index in `folder`, searched by the backend and the settings it was built with (`settings`, when the
    caller has read them already)."""
    settings = settings or read_settings(folder)
    return BACKENDS[settings["backend"]].open_searcher(Path(folder), settings)
