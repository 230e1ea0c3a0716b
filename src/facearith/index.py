"""Nearest-neighbour search: an NGT graph index of the features, and exact search beside it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from facearith.errors import IndexMissingError
from facearith.fsutil import atomic_dir

NGT_DIR = "ngt"
SETTINGS = "settings.json"  # beside the graph: what shaped the index, for the query to use as it was


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build(
    vectors: np.ndarray,
    dest: str | os.PathLike,
    edge_size_for_creation: int = 10,
    edge_size_for_search: int = 40,
    threads: int = 1,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write an NGT index of `vectors` (object id = row number) to `dest`, whole or not at all, with `settings`
    (JSON) beside the graph when given. With one inserting thread the index is the same, byte for byte, for the
    same vectors; more threads build large indexes faster but link the graph in thread-timing order."""
    import ngtpy

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"need a non-empty (N, D) array of features, got shape {vectors.shape}")
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        path = str(tmp / NGT_DIR)
        ngtpy.create(
            path,
            vectors.shape[1],
            distance_type="L2",
            object_type="Float",
            edge_size_for_creation=edge_size_for_creation,
            edge_size_for_search=edge_size_for_search,
        )
        index = ngtpy.Index(path)
        index.batch_insert(vectors, num_threads=threads)
        index.save()
        index.close()
        if settings is not None:
            (tmp / SETTINGS).write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
    return dest


def read_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The settings an index folder was built with (`build`'s `settings`)."""
    file = Path(path) / SETTINGS
    if not file.is_file():
        raise IndexMissingError(
            f"{file} not found: the index was built before it recorded its settings; run `dvc repro`"
        )
    try:
        return json.loads(file.read_text())
    except ValueError as exc:
        raise IndexMissingError(f"{file} is not readable JSON ({exc}); run `dvc repro --force index`") from None


class NGTSearcher:
    """A read-only NGT index; `search` returns (ids, distances), each (Q, k)."""

    def __init__(self, path: str | os.PathLike, epsilon: float = 0.1) -> None:
        import ngtpy

        ngt = Path(path) / NGT_DIR
        if not ngt.is_dir():
            raise IndexMissingError(f"no NGT index at {ngt}; run `dvc repro index`")
        self.index = ngtpy.Index(str(ngt), read_only=True)
        self.epsilon = epsilon

    def __len__(self) -> int:
        return self.index.get_num_of_objects()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        k = min(k, len(self))
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dists = np.full((len(queries), k), np.inf, dtype=np.float32)
        for i, q in enumerate(queries):
            found = self.index.search(q, size=k, epsilon=self.epsilon)
            for j, (obj, dist) in enumerate(found):
                ids[i, j], dists[i, j] = obj, dist
        return ids, dists


class ExactSearcher:
    """Brute-force L2 search over the same vectors, the reference NGT is measured against."""

    def __init__(self, vectors: np.ndarray) -> None:
        # float64: in float32 the expanded form loses ~1e-3 near zero distance to cancellation
        self.vectors = np.asarray(vectors, dtype=np.float64)
        self.sq = (self.vectors**2).sum(1)

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        k = min(k, len(self))
        d2 = (queries**2).sum(1)[:, None] - 2 * queries @ self.vectors.T + self.sq[None]
        ids = np.argsort(d2, axis=1, kind="stable")[:, :k]
        dists = np.sqrt(np.maximum(np.take_along_axis(d2, ids, 1), 0))
        return ids, dists.astype(np.float32)
