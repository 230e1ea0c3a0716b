"""Batched feature extraction: images in, one unit vector per image out, in input order; the network's alone
or beside PCA + LDA's (what is indexed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

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


def embed(
    model: torch.nn.Module,
    size: int,
    linear: Linear | None,
    fuse_weight: float,
    images: Sequence[np.ndarray],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The indexed features of `images` and the network's alone. The indexed ones are the network's beside
    `linear`'s, scaled so that a search ranks by fuse_weight x the network's cosine + the rest x the linear
    model's (linear.fuse); with a weight of 1 they are the network's."""
    from facearith.linear import fuse

    network = extract(model, images, size, batch_size, device)
    if fuse_weight >= 1:
        return network, network
    if linear is None:
        raise ValueError(f"features: a fuse weight of {fuse_weight} needs the linear model beside the network")
    return fuse(network, linear.embed(images), fuse_weight), network
