"""Batched feature extraction: images in, one non-negative unit vector per image out, in input order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from facearith.runtime import tune_allocator


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
