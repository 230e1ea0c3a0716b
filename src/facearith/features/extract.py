"""Batched feature extraction: images in, one unit vector per image out, in input order; the network's alone
or beside PCA + LDA's (what is indexed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facearith.arithmetic import unit
from facearith.data.tensors import to_batch
from facearith.errors import ConfigError
from facearith.features.linear import Linear
from facearith.runtime import tune_allocator
from facearith.training.inference import for_inference


@torch.inference_mode()
def extract(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    size: int,
    batch_size: int,
    device: str | torch.device,
    prepared: bool = False,
) -> np.ndarray:
    """Features of `images` (the model's 'features' output), as float32 of shape (N, D). `prepared`: `model`
    is for_inference's already (fusing takes 10-20 times one image's forward pass: a service keeps it)."""
    tune_allocator()
    net = model if prepared else for_inference(model)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = to_batch(images[start : start + batch_size], size).to(device)
        chunks.append(net(batch)["features"].float().cpu())
    if not chunks:
        raise ValueError("no images to extract features from")
    return torch.cat(chunks).numpy().astype(np.float32)


def network_axes(network: np.ndarray, members: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The identity and the attribute half of split-embedding features (each member's [identity, attribute] /
    sqrt 2, the members side by side, network.Ensemble), each row unit length."""
    n, width = network.shape
    half = width // (2 * members)
    if 2 * members * half != width:
        raise ValueError(f"features: {width} columns cannot be {members} members' identity and attribute halves")
    x = network.reshape(n, members, 2, half)
    return unit(x[:, :, 0].reshape(n, -1)), unit(x[:, :, 1].reshape(n, -1))


def layout(model: torch.nn.Module) -> tuple[str, int]:
    """The model's embedding (model.embedding) and how many networks its features come from (model.members)."""
    members = list(getattr(model, "members", [model]))
    return members[0].embedding, len(members)


def embed(
    model: torch.nn.Module,
    size: int,
    linear: Linear | None,
    fuse_weight: tuple[float, float],
    images: Sequence[np.ndarray],
    batch_size: int,
    device: str | torch.device,
    prepared: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The indexed features of `images` and the network's alone. The indexed ones fuse the network's with
    `linear`'s per axis: a search ranks by half of (identity weight x the network's identity cosine + the rest x
    PCA + LDA's) plus half of the same for the attribute (`fuse`); with both weights 1 they are the
    network's. The seed's embedding has no halves and takes one weight for both."""
    network = extract(model, images, size, batch_size, device, prepared)
    if fuse_weight[0] >= 1 and fuse_weight[1] >= 1:
        return network, network
    if linear is None:
        raise ValueError(f"features: fuse weights of {fuse_weight} need the linear model beside the network")
    embedding, members = layout(model)
    return fused(network, linear.embed_axes(images), fuse_weight, embedding, members), network


def fused(
    network: np.ndarray,
    linear_axes: tuple[np.ndarray, np.ndarray],
    fuse_weight: tuple[float, float],
    embedding: str,
    members: int,
) -> np.ndarray:
    """The network's features beside PCA + LDA's identity and attribute parts (`Linear.embed_axes`), weighted per
    axis (`embed`); the one place the indexed features are put together, for the features stage and for the rule
    that chooses the weights (facearith.features.fusion)."""
    w_id, w_attr = fuse_weight
    if w_id >= 1 and w_attr >= 1:
        return network
    lin_id, lin_attr = linear_axes
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
    return fuse(blocks)


def fuse(blocks: Sequence[tuple[np.ndarray, float]]) -> np.ndarray:
    """Feature blocks side by side (each row unit length in each), each scaled by the square root of its weight, so
    that a search ranks by the sum of weight x that block's cosine: a late fusion. The weights are 0 or more and
    sum to 1; a block of weight 0 is left out."""
    weights = [w for _, w in blocks]
    if any(w < 0 for w in weights) or not np.isclose(sum(weights), 1.0):
        raise ValueError(f"fuse: the blocks' weights {weights} must be 0 or more and sum to 1")
    rows = {len(b) for b, _ in blocks}
    if len(rows) != 1:
        raise ValueError(f"fuse: the blocks have different numbers of rows: {sorted(rows)}")
    return np.concatenate([np.sqrt(w) * b for b, w in blocks if w > 0], axis=1).astype(np.float32)
