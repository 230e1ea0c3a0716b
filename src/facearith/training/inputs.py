"""Training inputs: the seed's augmentations, and each epoch's batches of images on the training device, computed
once when nothing is random, otherwise augmented per batch (in worker processes if asked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from facearith.config import AugmentParams


def is_static(augment: AugmentParams) -> bool:
    """No random step: every epoch sees the same inputs, which can then be computed once."""
    neutral = tuple(augment.crop_scale) == (1.0, 1.0) and not any(augment.jitter)
    return neutral and not augment.hflip and not augment.degrees and not augment.shear


def augmentation(size: int, augment: AugmentParams) -> v2.Compose:
    """The seed's augmentations on a (1, H, W) uint8 tensor, ending as a float in [0, 1] of size x size."""
    # neutral settings skip their step: crop_scale [1, 1] is a plain resize, a zero jitter is no jitter
    if tuple(augment.crop_scale) == (1.0, 1.0):
        steps: list[nn.Module] = [v2.Resize((size, size), antialias=True)]
    else:
        steps = [v2.RandomResizedCrop(size, scale=tuple(augment.crop_scale), antialias=True)]
    if any(augment.jitter):
        steps.append(v2.ColorJitter(*augment.jitter))
    if augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment.degrees or augment.shear:
        steps.append(v2.RandomAffine(degrees=augment.degrees, shear=augment.shear))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


class _Batches(torch.utils.data.Dataset):
    """Augmented input batches of one epoch: item b is batch b's images, so that workers can prepare the next
    batches while the network runs."""

    def __init__(self, plan: list[tuple[np.ndarray, np.ndarray]], tensors: list[torch.Tensor], augment: nn.Module):
        self.plan, self.tensors, self.augment = plan, tensors, augment

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, b: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        order, rows = self.plan[b]
        return order, rows, torch.stack([self.augment(self.tensors[i]) for i in order])


def _as_is(item: Any) -> Any:
    return item


def resident(tensors: list[torch.Tensor], augment: nn.Module, device: torch.device) -> torch.Tensor:
    """Every training image as the network sees it, one (N, 1, S, S) tensor on `device`: with a static
    augmentation (`is_static`) each epoch's batches are rows of it, no per-image work on the hot path."""
    return torch.stack([augment(t) for t in tensors]).to(device)


def batches(
    plan: list[tuple[np.ndarray, np.ndarray]],
    tensors: list[torch.Tensor] | torch.Tensor,
    augment: nn.Module,
    workers: int,
    device: torch.device,
) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """(image indices, triplet rows into them, augmented images on `device`) per batch of `plan`
    (`triplets.epoch_batches`). From a `resident` tensor, the batch is its rows, gathered on its device.
    Otherwise the images are decoded once, before training; with workers > 0 they are augmented in that many
    processes ahead of the network (seeded from torch's generator, so a run is repeatable for a given number of
    workers)."""
    if isinstance(tensors, torch.Tensor):
        for order, rows in plan:
            yield order, rows, tensors[torch.from_numpy(order).to(tensors.device)]
        return
    loader = torch.utils.data.DataLoader(
        _Batches(plan, tensors, augment),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        collate_fn=_as_is,
    )
    for order, rows, x in loader:
        yield order, rows, x.to(device, non_blocking=True)
