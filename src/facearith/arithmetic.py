"""Feature arithmetic: attribute vectors and compositions, with the seed's normalisation."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def normalize(v: np.ndarray) -> np.ndarray:
    """Clip negatives and scale to unit L2 norm along the last axis; an all-zero vector stays zero."""
    v = np.maximum(np.asarray(v, dtype=np.float32), 0)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


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
