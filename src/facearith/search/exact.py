"""The exact backend: brute-force L2 search over every vector, the reference an approximate index is measured
against; on disk, the vectors themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facearith.config import IndexParams
from facearith.errors import IndexMissingError

VECTORS = "vectors.npy"


def write(vectors: np.ndarray, folder: Path, p: IndexParams) -> None:
    """The vectors in `folder`, as they are (`p` has nothing for this backend)."""
    with open(folder / VECTORS, "wb") as f:
        np.save(f, vectors)


def open_searcher(folder: Path, settings: dict[str, Any]) -> ExactSearcher:
    path = folder / VECTORS
    if not path.is_file():
        raise IndexMissingError(f"no exact index at {path}; run `dvc repro index`")
    return ExactSearcher(np.load(path))


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
