"""The NGT backend: a graph index (ngtpy) on disk, approximate search with NGT's epsilon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ngtpy
import numpy as np

from facearith.config import IndexParams
from facearith.errors import IndexMissingError

NGT_DIR = "ngt"


def write(vectors: np.ndarray, folder: Path, p: IndexParams) -> None:
    """An NGT index of `vectors` (object id = row number) in `folder`. With one inserting thread
    (index.build_threads) the index is the same, byte for byte, for the same vectors; more threads build large
    indexes faster but link the graph in thread-timing order."""
    path = str(folder / NGT_DIR)
    ngtpy.create(
        path,
        vectors.shape[1],
        distance_type="L2",
        object_type="Float",
        edge_size_for_creation=p.edge_size_for_creation,
        edge_size_for_search=p.edge_size_for_search,
    )
    index = ngtpy.Index(path)
    index.batch_insert(vectors, num_threads=p.build_threads)
    index.save()
    index.close()


def open_searcher(folder: Path, settings: dict[str, Any]) -> NGTSearcher:
    """The index in `folder`, searched with the epsilon it was built for (settings.json)."""
    return NGTSearcher(folder, settings["epsilon"])


class NGTSearcher:
    """A read-only NGT index; `search` returns (ids, distances), each (Q, k)."""

    def __init__(self, path: str | os.PathLike, epsilon: float) -> None:
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
