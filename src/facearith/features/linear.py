"""The linear baseline: PCA then LDA per axis (Fisherfaces) on downscaled pixels, no training loop.

Fitted on the training images only. Each axis (identity, attribute) gets its own LDA on a shared PCA; each
projection is unit-normed, split into its positive and negative parts (the search's normalisation clips
negatives, which would otherwise throw half of an LDA coordinate away) and the two axes concatenated, so that
label vectors, composition and transfer work on it exactly as on the network's features. The PCA size is
chosen by cross-validation inside the training images (nearest class mean on held-out folds, both axes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from facearith.arithmetic import unit
from facearith.data.tensors import to_batch
from facearith.errors import ModelError
from facearith.fsutil import atomic_path

PCA_SIZES = (8, 16, 24, 32, 48, 64, 96, 128)


def pixels(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Images downscaled to size x size, each standardised (zero mean, unit variance) against lighting."""
    x = to_batch(images, size).flatten(1).numpy().astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    return x / np.maximum(x.std(axis=1, keepdims=True), 1e-8)


def lda(x: np.ndarray, labels: np.ndarray, shrink: float = 1e-3) -> np.ndarray:
    """Fisher's discriminant directions (columns, at most classes - 1), most discriminative first."""
    classes = np.unique(labels)
    mean = x.mean(axis=0)
    within = np.zeros((x.shape[1], x.shape[1]))
    between = np.zeros_like(within)
    for c in classes:
        xc = x[labels == c]
        d = xc - xc.mean(axis=0)
        within += d.T @ d
        m = (xc.mean(axis=0) - mean)[:, None]
        between += len(xc) * (m @ m.T)
    # a little shrinkage keeps the within-class scatter invertible when there are few images per class
    within += shrink * np.trace(within) / len(within) * np.eye(len(within)) + 1e-12 * np.eye(len(within))
    # whiten the within-class scatter, then the between-class eigenvectors in that space
    chol = np.linalg.cholesky(within)
    inv = np.linalg.inv(chol)
    values, vectors = np.linalg.eigh(inv @ between @ inv.T)
    order = np.argsort(values)[::-1][: max(len(classes) - 1, 1)]
    return inv.T @ vectors[:, order]


@dataclass
class Linear:
    mean: np.ndarray
    pca: np.ndarray  # (D, k)
    identity: np.ndarray  # (k, identities - 1)
    attribute: np.ndarray  # (k, attributes - 1)
    size: int  # the pixels' side (pixels(), linear.size)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Features of any images (grey uint8 arrays of any size)."""
        return self.transform(pixels(images, self.size))

    def embed_axes(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The identity and the attribute part of `embed`'s features, each row unit length."""
        identity, attribute = self.axes(pixels(images, self.size))
        return identity.astype(np.float32), attribute.astype(np.float32)

    def axes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (as `pixels` gives them) to the identity and the attribute part, each row unit length."""
        z = (x - self.mean) @ self.pca
        parts = []
        for w in (self.identity, self.attribute):
            p = unit(z @ w)
            parts.append(np.concatenate([np.maximum(p, 0), np.maximum(-p, 0)], axis=1))
        return parts[0], parts[1]

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.concatenate(self.axes(x), axis=1) / np.sqrt(2)).astype(np.float32)


def fit(x: np.ndarray, identities: np.ndarray, attributes: np.ndarray, pca_size: int, size: int) -> Linear:
    """PCA + LDA on pixels `x` (`pixels` of images `size` px a side)."""
    return Linear(*_projections(x, identities, attributes, pca_size), size)


def _projections(
    x: np.ndarray, identities: np.ndarray, attributes: np.ndarray, pca_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mean, the PCA basis and each axis's LDA directions in it."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    pca = vt[:pca_size].T
    z = (x - mean) @ pca
    return mean, pca, lda(z, np.asarray(identities)), lda(z, np.asarray(attributes))


def _nearest_mean_accuracy(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray) -> float:
    classes = np.unique(train_y)
    means = np.stack([train_z[train_y == c].mean(axis=0) for c in classes])
    found = classes[np.argmin(((test_z[:, None] - means[None]) ** 2).sum(-1), axis=1)]
    return float((found == test_y).mean())


def choose_pca_size(
    x: np.ndarray, identities: np.ndarray, attributes: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[int, dict[int, float]]:
    """The PCA size with the best mean nearest-class-mean accuracy (both axes) over folds of the training
    images; sizes that leave LDA no room (more than the fold's images minus its classes) are not tried."""
    identities, attributes = np.asarray(identities), np.asarray(attributes)
    order = np.random.default_rng(seed).permutation(len(x))
    parts = np.array_split(order, folds)
    n_fit = len(x) - max(len(p) for p in parts)
    room = n_fit - max(len(np.unique(identities)), len(np.unique(attributes)))
    sizes = [s for s in PCA_SIZES if s <= room] or [max(room, 1)]
    scores = {}
    for size in sizes:
        accs = []
        for part in parts:
            rest = np.setdiff1d(order, part)
            mean, pca, w_id, w_attr = _projections(x[rest], identities[rest], attributes[rest], size)
            z_fit, z_val = (x[rest] - mean) @ pca, (x[part] - mean) @ pca
            for w, y in ((w_id, identities), (w_attr, attributes)):
                accs.append(_nearest_mean_accuracy(z_fit @ w, y[rest], z_val @ w, y[part]))
        scores[size] = float(np.mean(accs))
    return max(scores, key=scores.get), scores


def fit_images(
    images: Sequence[np.ndarray], identities: Sequence[str], attributes: Sequence[str], size: int
) -> tuple[Linear, dict[int, float]]:
    """PCA + LDA fitted on these (training) images, its PCA size chosen by cross-validation among them; and each
    tried size's cross-validated accuracy."""
    if len(images) == 0:
        raise ValueError("linear: no training images to fit PCA + LDA on")
    x = pixels(images, size)
    ids, attrs = np.asarray(identities), np.asarray(attributes)
    pca_size, scores = choose_pca_size(x, ids, attrs)
    return fit(x, ids, attrs, pca_size, size), scores


def save(model: Linear, path: str | os.PathLike) -> None:
    """An .npz of the fitted arrays (no pickle), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k.name: np.asarray(getattr(model, k.name)) for k in fields(Linear)})


def load(path: str | os.PathLike) -> Linear:
    if not os.path.isfile(path):
        raise ModelError(f"{path} not found; run `dvc repro linear` to fit PCA + LDA")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k.name: z[k.name] for k in fields(Linear)}
    except Exception as exc:  # truncated, not an npz, or missing an array
        raise ModelError(f"{path} is not a readable PCA + LDA model ({exc}); run `dvc repro --force linear`") from None
    return Linear(**{**arrays, "size": int(arrays["size"])})
