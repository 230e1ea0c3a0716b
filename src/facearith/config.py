"""params.yaml as typed settings: one frozen dataclass per group, every key required, nothing filled in.

params.yaml is the one place values live; this module only checks them. An unknown key, a missing key, a
wrong type or an impossible value stops a stage at its start with one line naming the key. Library functions
take these settings (e.g. `TrainParams`), not raw dicts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facearith.errors import ConfigError
from facearith.settings import at_least, build, choices

SAMPLERS = ("blocks", "triplets")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class SyntheticParams:
    """data.synthetic: the embedded synthetic faces, drawn by the pipeline itself."""

    persons: int = at_least(2, "at least 2 persons")
    images_per_pair: int = at_least(1, "at least 1 image per pair")
    size: int = at_least(32, "at least 32 px")
    nuisance: float = at_least(0.0, "0 or more")
    seed: int


@dataclass(frozen=True)
class JaffeParams:
    """data.jaffe: where your copy of JAFFE comes from (a local archive or a download link) and its checksum."""

    url: str
    token_env: str
    archive: str
    sha256: str


@dataclass(frozen=True)
class FolderParams:
    """data.folder: a folder of images whose names carry both labels."""

    path: str


@dataclass(frozen=True)
class DataParams:
    """data: which raw image set the data stage materialises."""

    source: str = choices("synthetic", "jaffe", "folder")
    synthetic: SyntheticParams
    jaffe: JaffeParams
    folder: FolderParams


@dataclass(frozen=True)
class PrepareParams:
    """prepare: how file names become labels, and which images train."""

    split: str = choices("seed", "images", "pairs", "all")
    seed: int
    folds: int = at_least(2, "at least 2")
    fold: int = at_least(0, "0 or more")
    pattern: str


@dataclass(frozen=True)
class ModelParams:
    """model: the network and the embedding that is indexed."""

    arch: str = choices("mobilenet_v2")
    width: float
    pretrained: bool
    weights: str
    embedding: str = choices("seed", "split")
    dim: int = at_least(2, "at least 2")
    pooling: str = choices("median", "mean", "max")
    members: int = at_least(1, "at least 1 network")

    def __post_init__(self) -> None:
        if not 0 < self.width <= 4:
            raise ConfigError(f"params: 'model.width' is {self.width}; it must be above 0 and at most 4 (1: the seed)")
        if self.pretrained and self.width != 1:
            raise ConfigError(
                f"params: 'model.width' is {self.width}, but ImageNet weights exist for width 1 only; "
                "set model.width: 1, or model.pretrained: false"
            )


@dataclass(frozen=True)
class AugmentParams:
    """train.augment: the seed's augmentations; neutral values skip a step."""

    crop_scale: tuple[float, float]
    jitter: tuple[float, float, float, float]
    hflip: bool
    degrees: float
    shear: float

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"params: 'train.augment.crop_scale' is {[lo, hi]}; need 0 < low <= high <= 1")


@dataclass(frozen=True)
class TrainParams:
    """train: the training loop (sampler, optimiser, losses, input size, device)."""

    device: str = choices("auto", "cpu", "cuda")
    seed: int
    threads: int = at_least(0, "0 (all cores) or more")
    workers: int = at_least(0, "0 (augment in the training process) or more")
    amp: bool
    epochs: int = at_least(0, "0 or more")
    sampler: str = choices(*SAMPLERS)
    batch_size: int = at_least(1, "at least 1")
    forward_chunk: int = at_least(0, "0 (one pass per batch) or more")
    lr: float
    schedule: str = choices(*SCHEDULES)
    swa_from: float = at_least(0, "0 (off) or a fraction of the epochs, below 1")
    weight_decay: float = at_least(0, "0 or more")
    margin: float = at_least(0, "0 or more")
    ce_weight: float
    ce_scale: float
    label_smoothing: float = at_least(0, "0 (off) or a fraction below 1")
    recalibrate_bn: bool
    image_size: int = at_least(32, "at least 32 px: MobileNetV2 downsamples 32x")
    augment: AugmentParams

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError("params: 'train.lr' must be greater than 0")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(
                f"params: 'train.label_smoothing' is {self.label_smoothing}; it must be 0 (off) or a fraction below 1"
            )
        if not 0 <= self.swa_from < 1:
            raise ConfigError(
                f"params: 'train.swa_from' is {self.swa_from}; it must be 0 (off) or a fraction of the epochs below 1"
            )


def swa_first_epoch(epochs: int, swa_from: float) -> int:
    """The first epoch (0-based) whose weights enter the average (train.swa_from): the last `1 - swa_from` of
    the epochs, and at least the last one."""
    return min(math.floor(swa_from * epochs), max(epochs - 1, 0))


@dataclass(frozen=True)
class LinearParams:
    """linear: PCA then LDA per axis on downscaled pixels, fitted on the training images (Fisherfaces)."""

    size: int = at_least(4, "at least 4 (pixels a side)")


@dataclass(frozen=True)
class FuseWeights:
    """features.fuse_weight: per axis, the network's weight beside PCA + LDA's (1: the network alone, 0: PCA + LDA
    alone). Per axis because the two need not generalise alike: on pairs never trained on, the network's identity
    half helps and its expression half hurts (docs/results.md)."""

    identity: float = at_least(0, "a weight between 0 and 1")
    attribute: float = at_least(0, "a weight between 0 and 1")

    def __post_init__(self) -> None:
        for axis in ("identity", "attribute"):
            if getattr(self, axis) > 1:
                raise ConfigError(
                    f"params: 'features.fuse_weight.{axis}' is {getattr(self, axis)}; it must be between 0 and 1"
                )

    def pair(self) -> tuple[float, float]:
        return self.identity, self.attribute


@dataclass(frozen=True)
class FeaturesParams:
    """features: feature extraction, and the network's weight per axis in the indexed features beside PCA + LDA's:
    chosen on the training images (fuse: inner, facearith.features.fusion) or fixed (fuse_weight)."""

    batch_size: int = at_least(1, "at least 1")
    fuse: str = choices("inner", "fixed")
    fuse_steps: int = at_least(1, "at least 1 (the weights tried are 0, 1/steps, ..., 1)")
    fuse_folds: int = at_least(1, "at least 1 (inner folds whose scores are averaged)")
    fuse_weight: FuseWeights


@dataclass(frozen=True)
class FinalParams:
    """final: where the network the index uses starts (stage train): from scratch for train.epochs, or from stage
    fuse's inner network, continued on all the training images (it has learnt most of what a fresh one would)."""

    start: str = choices("inner", "scratch")
    epochs: int = at_least(1, "at least 1")


@dataclass(frozen=True)
class CheckpointParams:
    """checkpoint: the checkpoint that lets an interrupted training resume."""

    path: str
    resume: bool
    every_s: float = at_least(0, "0 (after every epoch) or more seconds")


@dataclass(frozen=True)
class IndexParams:
    """index: the search backend (facearith.search.backends) and NGT's build and search settings."""

    backend: str
    edge_size_for_creation: int = at_least(1, "at least 1")
    edge_size_for_search: int = at_least(1, "at least 1")
    build_threads: int = at_least(1, "at least 1")
    epsilon: float


@dataclass(frozen=True)
class EvaluateParams:
    """evaluate: the K of Recall@K (a hit among the first K results) and the seed's random-query protocol."""

    recall_at: tuple[int, ...]
    seed_queries: int = at_least(1, "at least 1")
    seed: int


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    data: DataParams
    prepare: PrepareParams
    linear: LinearParams
    model: ModelParams
    train: TrainParams
    features: FeaturesParams
    final: FinalParams
    checkpoint: CheckpointParams
    index: IndexParams
    evaluate: EvaluateParams

    def __post_init__(self) -> None:
        if self.final.start == "inner" and self.features.fuse != "inner":
            raise ConfigError(
                "params: 'final.start' is inner (continue stage fuse's inner network), but 'features.fuse' is "
                f"{self.features.fuse} and trains none; set final.start: scratch, or features.fuse: inner"
            )
        k, folds = self.features.fuse_folds, self.prepare.folds
        if self.features.fuse == "inner" and self.prepare.split == "pairs" and k > folds:
            raise ConfigError(
                f"params: 'features.fuse_folds' is {k}, but with prepare.split pairs the inner rule's folds are "
                f"prepare.folds' {folds} folds of the training pairs; set features.fuse_folds to at most {folds}"
            )


def validate(raw: Any) -> Params:
    return build(Params, raw)


def load(path: str | os.PathLike = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params: {path} not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"params: {path} is not valid YAML: {exc}") from None
    return validate(raw)
