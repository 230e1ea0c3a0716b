"""Feature arithmetic: attribute vectors and compositions, with the seed's normalisation."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Each row (the last axis) scaled to unit L2 norm; an all-zero row stays zero."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def normalize(v: np.ndarray) -> np.ndarray:
    """The seed's normalisation: negatives clipped, then unit length, in float32."""
    return unit(np.maximum(np.asarray(v, dtype=np.float32), 0))


def label_vectors(features: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """For each label, the normalised median of the features carrying it."""
    labels = np.asarray(labels)
    return {str(lab): normalize(np.median(features[labels == lab], axis=0)) for lab in sorted(set(labels.tolist()))}


def compose(plus: Iterable[np.ndarray], minus: Iterable[np.ndarray] = ()) -> np.ndarray:
    """normalise(sum(plus) - sum(minus))."""
    total = sum(np.asarray(p, dtype=np.float32) for p in plus)
    for m in minus:
        total = total - m
    return normalize(total)
