"""Images as the network's input: a batch tensor, resized, in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """A (1, H, W) uint8 image to (1, size, size) uint8: antialiased bilinear on the uint8 values, as torchvision's
    `resize(..., antialias=True)` does on the CPU (the same bytes, checked on JAFFE's images), without importing
    torchvision: its import takes 2-3 s (it loads torch._dynamo), which stage linear, needing no network, saves."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    return F.interpolate(image[None], size=[size, size], mode="bilinear", align_corners=False, antialias=True)[0]


def to_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Grey uint8 arrays of any size to a (N, 1, size, size) float tensor in [0, 1]."""
    out = torch.empty((len(images), 1, size, size), dtype=torch.float32)
    for i, img in enumerate(images):
        t = torch.from_numpy(np.ascontiguousarray(img))[None]
        out[i] = resize(t, size).float() / 255.0
    return out
