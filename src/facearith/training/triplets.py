"""Triplet sampling, two ways.

- `sample_triplets`, the seed's scheme: for each anchor, 50:50 a triplet by identity or by attribute, its
  positive and negative drawn from the whole set (so a batch forwards 3 images per anchor).
- `block_batches` + `block_triplets`: each batch is a block, a random group of identities crossed with a random
  group of attributes; every image is forwarded once per epoch and is anchor, positive and negative of the
  others in its block, with every valid triplet of both kinds (1 image per anchor, far more triplets).
"""

from __future__ import annotations

import numpy as np

from facearith.config import SAMPLERS
from facearith.errors import TrainError

BY_IDENTITY = 0
BY_ATTRIBUTE = 1


def check_samplable(identities: np.ndarray, attributes: np.ndarray) -> None:
    """Both kinds of triplet need two labels of each axis; say so instead of failing mid-training."""
    for name, labels in (("persons (identities)", identities), ("expressions (attributes)", attributes)):
        n = len(np.unique(labels))
        if n < 2:
            raise TrainError(
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
                raise TrainError(f"item {i} shares neither its person nor its expression with any other item")
        negatives = np.flatnonzero(~same[kind][i])
        rows[i] = (i, rng.choice(positives), rng.choice(negatives), kind)
    return rows


def _groups(labels: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The distinct labels, shuffled, in near-equal groups of about `size` (at least 2 where there are 2)."""
    unique = rng.permutation(np.unique(labels))
    n_groups = max(1, min(-(-len(unique) // size), len(unique) // 2))
    return np.array_split(unique, n_groups)


def block_batches(
    identities: np.ndarray, attributes: np.ndarray, rng: np.random.Generator, batch_size: int
) -> list[np.ndarray]:
    """One epoch as blocks of item indices: the items of a group of identities x a group of attributes.

    The groups are drawn afresh each epoch and sized so that a block holds about `batch_size` items (4 x 4
    (person, expression) pairs for 16 images of one image each), with at least 2 identities and 2 attributes
    where the data has them, so that every item finds positives and negatives of both kinds in its block.
    Every item is in exactly one block; the blocks come in random order.
    """
    identities = np.asarray(identities)
    attributes = np.asarray(attributes)
    check_samplable(identities, attributes)
    n_id, n_attr = len(np.unique(identities)), len(np.unique(attributes))
    per_pair = len(identities) / (n_id * n_attr)  # mean items per (identity, attribute) pair
    pairs = max(4.0, batch_size / per_pair)
    id_size = int(np.clip(round(np.sqrt(pairs)), 2, n_id))
    attr_size = int(np.clip(round(pairs / id_size), 2, n_attr))
    blocks = []
    for id_group in _groups(identities, id_size, rng):
        in_ids = np.isin(identities, id_group)
        # the attributes are regrouped for each identity group, so blocks of one epoch cross differently
        for attr_group in _groups(attributes, attr_size, rng):
            block = np.flatnonzero(in_ids & np.isin(attributes, attr_group))
            if block.size:
                blocks.append(rng.permutation(block))
    return [blocks[i] for i in rng.permutation(len(blocks))]


def block_triplets(identities: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Every valid triplet within a block, as rows (anchor, positive, negative, kind) of indices into it:
    for each kind, each anchor with each other item sharing its label and each item not sharing it."""
    identities = np.asarray(identities)
    attributes = np.asarray(attributes)
    n = len(identities)
    parts = []
    for kind, labels in ((BY_IDENTITY, identities), (BY_ATTRIBUTE, attributes)):
        same = labels[:, None] == labels[None, :]
        positive = same & ~np.eye(n, dtype=bool)
        # valid[a, p, q]: p shares a's label (p != a), q does not
        a, p, q = np.nonzero(positive[:, :, None] & ~same[:, None, :])
        parts.append(np.stack([a, p, q, np.full_like(a, kind)], axis=1))
    return np.concatenate(parts).astype(np.int64)


def epoch_batches(
    sampler: str, identities: np.ndarray, attributes: np.ndarray, rng: np.random.Generator, batch_size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch's batches as (indices of the images to forward, triplet rows indexing into those images).

    'blocks': each image once (`block_batches`), every valid triplet within its block. 'triplets': the seed's
    batches of `batch_size` triplets, anchors then positives then negatives (3 images per anchor).
    """
    identities = np.asarray(identities)
    attributes = np.asarray(attributes)
    if sampler == "blocks":
        return [
            (block, block_triplets(identities[block], attributes[block]))
            for block in block_batches(identities, attributes, rng, batch_size)
        ]
    if sampler != "triplets":
        raise ValueError(f"unknown sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    rows = sample_triplets(identities, attributes, rng)
    rows = rows[rng.permutation(len(rows))]
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        k, local = len(batch), np.arange(len(batch))
        order = np.concatenate([batch[:, 0], batch[:, 1], batch[:, 2]])
        out.append((order, np.stack([local, local + k, local + 2 * k, batch[:, 3]], axis=1)))
    return out
