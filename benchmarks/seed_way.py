"""The seed experiment's way, rewritten from its description, as the baseline the project is measured against.

Training: a Dataset that, for every item, filters a pandas table for the positive and the negative, opens the
three images from disk with PIL and augments them; batches of 16 triplets; three forward passes per batch
(anchors, positives, negatives); triplet loss on cnn_finetune's MobileNetV2 output. Extraction: one image at a
time through `model._features`, median over the spatial axes. Search: exact numpy brute force, one query at a
time. Plain NCHW float32 and the process's default allocator, as the seed ran.
"""

from __future__ import annotations

import random
import time
import warnings

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def make_model(num_classes: int = 70) -> nn.Module:
    from cnn_finetune import make_model as cnn_make_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return cnn_make_model("mobilenet_v2", num_classes=num_classes, pretrained=False)


def train_transform(size: int) -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.75, 1.0)),
            T.ColorJitter(0.3, 0.5, 0.5, 0),
            T.RandomHorizontalFlip(),
            T.RandomAffine(0.5, shear=0.5),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )


class SeedTriplets(torch.utils.data.Dataset):
    """One item per (person, expression) image: 50:50 a person triplet or an expression triplet."""

    def __init__(self, table: pd.DataFrame, transform: T.Compose) -> None:
        self.table = table.reset_index(drop=True)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.table)

    def _load(self, path: str) -> torch.Tensor:
        return self.transform(Image.open(path).convert("RGB"))

    def __getitem__(self, i: int):
        df = self.table
        anchor = df.iloc[i]
        key = "person" if random.random() < 0.5 else "expression"
        positive = df[(df[key] == anchor[key]) & (df.index != i)].sample(1).iloc[0]
        negative = df[df[key] != anchor[key]].sample(1).iloc[0]
        return self._load(anchor.path), self._load(positive.path), self._load(negative.path)


def train_images_per_second(
    table: pd.DataFrame, size: int, epochs: int, seed: int = 0, device: str | torch.device = "cpu"
) -> dict:
    """Train as the seed does; images/s (3 per triplet) and anchors/s over the epochs after the first (warm-up)."""
    random.seed(seed)
    torch.manual_seed(seed)
    model = make_model(table.person.nunique() * table.expression.nunique()).to(device)
    model.train()
    loader = torch.utils.data.DataLoader(SeedTriplets(table, train_transform(size)), batch_size=16, shuffle=True)
    loss_fn = nn.TripletMarginLoss(margin=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    marks, images = [], 0
    for _ in range(epochs):
        for a, p, n in loader:
            a, p, n = a.to(device), p.to(device), n.to(device)
            loss = loss_fn(model(a), model(p), model(n))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            images += 3 * len(a)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), images))
    return rate(marks, images_per_anchor=3)


def rate(marks: list[tuple[float, int]], images_per_anchor: float) -> dict:
    """images/s through the network, and anchors/s: training images trained on (each once per epoch)."""
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    return {
        "images_per_second": (n1 - n0) / (t1 - t0),
        "anchors_per_second": (n1 - n0) / images_per_anchor / (t1 - t0),
        "seconds": t1 - t0,
        "images": n1 - n0,
    }


def extract(model: nn.Module, paths: list[str], size: int) -> np.ndarray:
    """Features one image at a time, read from disk, as the seed extracts them."""
    transform = T.Compose([T.Resize(size), T.ToTensor(), T.Normalize(MEAN, STD)])
    features = []
    with torch.no_grad():
        for path in paths:
            x = transform(Image.open(path).convert("RGB"))[None]
            fmap = model._features(x)
            f = fmap.flatten(2).median(dim=2).values[0].clamp_min(0)
            features.append((f / f.norm()).numpy())
    return np.stack(features)


def exact_search(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact k nearest neighbours by L2 (cosine on unit vectors), one query at a time."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        d = -(data @ q)  # unit vectors: the smallest L2 distance is the largest dot product
        top = np.argpartition(d, k)[:k]
        out[i] = top[np.argsort(d[top], kind="stable")]
    return out
