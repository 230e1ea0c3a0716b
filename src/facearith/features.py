"""Batched feature extraction: images in, one unit vector per image out, in input order; the network's alone
or beside PCA + LDA's (what is indexed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from facearith.errors import ConfigError
from facearith.runtime import tune_allocator

if TYPE_CHECKING:
    from facearith.linear import Linear


def to_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Grey uint8 arrays of any size to a (N, 1, size, size) float tensor in [0, 1]."""
    out = torch.empty((len(images), 1, size, size), dtype=torch.float32)
    for i, img in enumerate(images):
        t = torch.from_numpy(np.ascontiguousarray(img))[None]
        out[i] = TF.resize(t, [size, size], antialias=True).float() / 255.0
    return out


@torch.inference_mode()
def extract(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    size: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Features of `images` (the model's 'features' output), as float32 of shape (N, D)."""
    from facearith.model import for_inference

    tune_allocator()
    net = for_inference(model)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = to_batch(images[start : start + batch_size], size).to(device)
        chunks.append(net(batch)["features"].float().cpu())
    if not chunks:
        raise ValueError("no images to extract features from")
    return torch.cat(chunks).numpy().astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def network_axes(network: np.ndarray, members: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The identity and the attribute half of split-embedding features (each member's [identity, attribute] /
    sqrt 2, the members side by side, model.Ensemble), each row unit length."""
    n, width = network.shape
    half = width // (2 * members)
    if 2 * members * half != width:
        raise ValueError(f"features: {width} columns cannot be {members} members' identity and attribute halves")
    x = network.reshape(n, members, 2, half)
    return _unit(x[:, :, 0].reshape(n, -1)), _unit(x[:, :, 1].reshape(n, -1))


def _layout(model: torch.nn.Module) -> tuple[str, int]:
    """The model's embedding (model.embedding) and how many networks its features come from (model.members)."""
    members = list(getattr(model, "members", [model]))
    return members[0].embedding, len(members)


def embed(
    model: torch.nn.Module,
    size: int,
    linear: Linear | None,
    fuse_weight: tuple[float, float],
    images: Sequence[np.ndarray],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The indexed features of `images` and the network's alone. The indexed ones fuse the network's with
    `linear`'s per axis: a search ranks by half of (identity weight x the network's identity cosine + the rest x
    PCA + LDA's) plus half of the same for the attribute (linear.fuse); with both weights 1 they are the
    network's. The seed's embedding has no halves and takes one weight for both."""
    from facearith.linear import fuse

    network = extract(model, images, size, batch_size, device)
    w_id, w_attr = fuse_weight
    if w_id >= 1 and w_attr >= 1:
        return network, network
    if linear is None:
        raise ValueError(f"features: fuse weights of {fuse_weight} need the linear model beside the network")
    embedding, members = _layout(model)
    lin_id, lin_attr = linear.embed_axes(images)
    if embedding == "split":
        net_id, net_attr = network_axes(network, members)
        blocks = [(net_id, w_id / 2), (lin_id, (1 - w_id) / 2), (net_attr, w_attr / 2), (lin_attr, (1 - w_attr) / 2)]
    elif w_id == w_attr:
        blocks = [(network, w_id), (lin_id, (1 - w_id) / 2), (lin_attr, (1 - w_id) / 2)]
    else:
        raise ConfigError(
            f"params: 'features.fuse_weight' is {w_id} for identity and {w_attr} for attribute, but "
            "model.embedding 'seed' has no identity and attribute halves: give both the same weight"
        )
    return fuse(blocks), network
