"""Triplet sampling: for each anchor, 50:50 a triplet by identity or by attribute (the seed's scheme)."""

from __future__ import annotations

import numpy as np

BY_IDENTITY = 0
BY_ATTRIBUTE = 1


def check_samplable(identities: np.ndarray, attributes: np.ndarray) -> None:
    """Both kinds of triplet need two labels of each axis; say so instead of failing mid-training."""
    for name, labels in (("persons (identities)", identities), ("expressions (attributes)", attributes)):
        n = len(np.unique(labels))
        if n < 2:
            raise ValueError(
                f"training needs at least 2 {name}, the data has {n}; add images or choose another data.source"
            )


def sample_triplets(
    identities: np.ndarray, attributes: np.ndarray, rng: np.random.Generator, p_identity: float = 0.5
) -> np.ndarray:
    """One triplet per anchor, as rows (anchor, positive, negative, kind).

    kind BY_IDENTITY: the positive shares the anchor's identity, the negative has another identity.
    kind BY_ATTRIBUTE: the same for the attribute. The positive is never the anchor itself; when an
    anchor has no other item sharing its label, the triplet switches to the other kind.
    """
    identities = np.asarray(identities)
    attributes = np.asarray(attributes)
    check_samplable(identities, attributes)
    n = len(identities)
    same = {
        BY_IDENTITY: identities[:, None] == identities[None, :],
        BY_ATTRIBUTE: attributes[:, None] == attributes[None, :],
    }
    not_self = ~np.eye(n, dtype=bool)
    rows = np.empty((n, 4), dtype=np.int64)
    for i in range(n):
        kind = BY_IDENTITY if rng.random() < p_identity else BY_ATTRIBUTE
        positives = np.flatnonzero(same[kind][i] & not_self[i])
        if positives.size == 0:
            kind = 1 - kind
            positives = np.flatnonzero(same[kind][i] & not_self[i])
            if positives.size == 0:
                raise ValueError(f"item {i} shares neither its person nor its expression with any other item")
        negatives = np.flatnonzero(~same[kind][i])
        rows[i] = (i, rng.choice(positives), rng.choice(negatives), kind)
    return rows
