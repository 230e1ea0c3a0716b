"""Images as the network's input: a batch tensor, resized, in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF


def to_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Grey uint8 arrays of any size to a (N, 1, size, size) float tensor in [0, 1]."""
    out = torch.empty((len(images), 1, size, size), dtype=torch.float32)
    for i, img in enumerate(images):
        t = torch.from_numpy(np.ascontiguousarray(img))[None]
        out[i] = TF.resize(t, [size, size], antialias=True).float() / 255.0
    return out
