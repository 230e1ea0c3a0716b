"""The network: cnn_finetune's MobileNetV2, its feature map pooled, and the embedding that is indexed."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from facearith.config import ModelParams
from facearith.errors import ConfigError, ModelError
from facearith.fsutil import atomic_path
from facearith.runtime import channels_last
from facearith.settings import as_dict
from facearith.settings import build as build_params

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Clip negatives, then unit L2 norm; an all-zero vector stays zero (no NaN)."""
    return F.normalize(x.clamp_min(0), dim=-1, eps=1e-12)


def _median_cpu(fmap: torch.Tensor) -> torch.Tensor:
    """torch.median's value (the lower median) over H x W, by numpy's partition on contiguous rows: 4-5x faster
    than torch.median on this CPU, a tenth of extraction time at 256 px (benchmarks/). Inference only."""
    rows = fmap.float().contiguous().flatten(2).numpy()  # (B, C, H*W), each row contiguous
    k = (rows.shape[2] - 1) // 2
    return torch.from_numpy(np.ascontiguousarray(np.partition(rows, k, axis=2)[..., k])).to(fmap.dtype)


def pool(fmap: torch.Tensor, how: str = "median") -> torch.Tensor:
    """Spatial pooling of a (B, C, H, W) map to (B, C); the seed takes the median."""
    if how == "median" and fmap.device.type == "cpu" and not fmap.requires_grad:
        return _median_cpu(fmap)
    # (B, H*W, C) is a view of a channels_last map (no copy), and the gradient flows back in that layout
    flat = fmap.permute(0, 2, 3, 1).flatten(1, 2)
    if how == "median":
        return flat.median(dim=1).values
    if how == "mean":
        return flat.mean(dim=1)
    if how == "max":
        return flat.amax(dim=1)
    raise ModelError(f"model.pooling: unknown pooling {how!r}; allowed: median, mean, max")


def imagenet_weights_file(weights: str = "") -> tuple[Path, str]:
    """Where the ImageNet MobileNetV2 weights are expected, and where they come from."""
    url = MobileNet_V2_Weights.IMAGENET1K_V1.url
    if weights:
        return Path(weights).expanduser(), url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def load_imagenet_features(features: nn.Module, weights: str = "") -> None:
    """Load torchvision's ImageNet weights into the backbone; offline, a clear error names the file to provide."""
    path, url = imagenet_weights_file(weights)
    if not path.is_file():
        if weights:
            raise ModelError(f"model.weights: {path} does not exist; download {url} and put it there")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except Exception as exc:  # offline: no route, DNS failure, refused
            raise ModelError(
                f"model.pretrained: cannot download the ImageNet weights ({exc.__class__.__name__}: {exc}). "
                f"Download {url} elsewhere and copy it to {path}, or set model.weights to its path, "
                "or set model.pretrained to false"
            ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "features."
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not own:
        raise ModelError(f"{path} holds no MobileNetV2 'features.*' weights; is it {os.path.basename(url)}?")
    features.load_state_dict(own)


class FaceNet(nn.Module):
    """MobileNetV2 from cnn_finetune; the indexed feature is the pooled, non-negative, unit backbone map
    (embedding 'seed') or two projection heads, one per axis, each unit-normed and concatenated ('split')."""

    def __init__(
        self,
        num_classes: int,
        arch: str,
        width: float,
        embedding: str,
        dim: int,
        pooling: str,
        pretrained: bool,
        weights: str,
        n_identities: int,
        n_attributes: int,
    ) -> None:
        super().__init__()
        # importing cnn_finetune (its pretrainedmodels) draws from torch's generator; without the fork, a
        # seeded build gave other weights in a fresh process than after an earlier build had imported it
        with torch.random.fork_rng(devices=[]):
            from cnn_finetune import make_model

        with warnings.catch_warnings():  # torchvision's 'pretrained=' deprecation, raised inside cnn_finetune
            warnings.simplefilter("ignore", UserWarning)
            self.net = make_model(arch, num_classes=num_classes, pretrained=False)
        if width != 1:  # torchvision's width multiplier; the classifier follows the last map's channels
            self.net._features = mobilenet_v2(width_mult=width).features
            self.net._classifier = nn.Linear(self.net._features[-1].out_channels, num_classes)
        if pretrained:
            load_imagenet_features(self.net._features, weights)
        self.embedding = embedding
        self.pooling = pooling
        channels = self.net._classifier.in_features
        if embedding == "split":
            self.identity_head = nn.Linear(channels, dim)
            self.attribute_head = nn.Linear(channels, dim)
            # cosine classifiers, one per axis: an optional second loss that pulls each label together
            self.identity_classes = nn.Parameter(torch.randn(max(n_identities, 1), dim) * 0.01)
            self.attribute_classes = nn.Parameter(torch.randn(max(n_attributes, 1), dim) * 0.01)
        elif embedding != "seed":
            raise ModelError(f"model.embedding: unknown {embedding!r}; allowed: seed, split")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.to(memory_format=torch.channels_last)  # faster convolutions on oneDNN and cuDNN (benchmarks/)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        # images arrive as (B, 1 or 3, H, W) floats in [0, 1]; grey is repeated to the 3 channels ImageNet nets take
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return channels_last((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return 'features' (what is indexed) and the 'identity' and 'attribute' vectors the loss trains."""
        fmap = self.net._features(self._input(x))
        pooled = pool(fmap, self.pooling)
        if self.embedding == "split":
            ident = normalize(self.identity_head(pooled))
            attr = normalize(self.attribute_head(pooled))
            return {
                "features": torch.cat([ident, attr], dim=1) / 2**0.5,
                "identity": ident,
                "attribute": attr,
                "identity_logits": ident @ F.normalize(self.identity_classes, dim=1).T,
                "attribute_logits": attr @ F.normalize(self.attribute_classes, dim=1).T,
            }
        # the seed: triplets on the network's output (num_classes wide), the index on the pooled map
        logits = self.net._classifier(self.net.pool(fmap).flatten(1))
        return {"features": normalize(pooled), "identity": logits, "attribute": logits}


class Ensemble(nn.Module):
    """Networks trained from different seeds (a deep ensemble): each image's feature is the members' features
    concatenated, scaled to unit length, so a search compares images by their mean cosine over the members."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # only the indexed features: each member trains alone, so nothing reads the members' joint loss outputs
        feats = [m(x)["features"] for m in self.members]
        return {"features": torch.cat(feats, dim=1) * len(feats) ** -0.5}


def build(p: ModelParams, num_classes: int, n_identities: int = 0, n_attributes: int = 0) -> FaceNet | Ensemble:
    """One network, or an Ensemble of `p.members` (each initialised from torch's generator in turn; training
    seeds each member itself: members.train_selected)."""
    heads = (p.embedding, p.dim, p.pooling)
    nets = [
        FaceNet(num_classes, p.arch, p.width, *heads, p.pretrained, p.weights, n_identities, n_attributes)
        for _ in range(p.members)
    ]
    return nets[0] if p.members == 1 else Ensemble(nets)


def save(
    model: FaceNet | Ensemble, path: str | os.PathLike, model_params: ModelParams, num_classes: int, extra: dict
) -> None:
    # plain types only, so that torch.load(weights_only=True) can read it back
    blob = {"state_dict": model.state_dict(), "model": as_dict(model_params), "num_classes": num_classes, **extra}
    save_bytes(blob, path)


def save_bytes(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through memory, then an atomic write: torch names the archive's inner folder after the
    file, so saving straight to a temporary name would make identical weights differ byte for byte (and
    DVC would rerun every stage downstream)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def save_absent(path: str | os.PathLike, why: str) -> None:
    """A model file that holds no network, and says why (stage fuse's inner network when features.fuse is fixed):
    the stage's output exists, as DVC wants, and loading it is a clear error."""
    save_bytes({"absent": why}, path)


def members_of(model: nn.Module) -> list[nn.Module]:
    """An ensemble's networks, or the one network."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[FaceNet | Ensemble, dict]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} not found; run `dvc repro` to train the model")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable facearith model ({exc}); run `dvc repro --force train`") from None
    if "absent" in blob:
        raise ModelError(f"{path} holds no network: {blob['absent']}")
    try:  # pretrained off: the trained weights replace ImageNet's anyway
        # a model saved before model.members or model.width existed is one network of width 1
        raw = {"members": 1, "width": 1.0, **blob["model"], "pretrained": False}
        params = build_params(ModelParams, raw, "model")
    except ConfigError as exc:
        raise ModelError(f"{path} was saved with other model settings ({exc}); run `dvc repro --force train`") from None
    model = build(params, blob["num_classes"], len(blob["persons"]), len(blob["expressions"]))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), blob


def resolve_device(requested: str) -> torch.device:
    """'auto' takes CUDA when present; 'cuda' without CUDA is an error, not a silent fallback."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelError("train.device is 'cuda' but no CUDA device is available here; set train.device to auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)
