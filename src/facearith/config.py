"""params.yaml as typed settings: one frozen dataclass per group, every key required, nothing filled in.

params.yaml is the one place values live; this module only checks them. An unknown key, a missing key, a
wrong type or an impossible value stops a stage at its start with one line naming the key. Library functions
take these settings (e.g. `TrainParams`), not raw dicts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from facearith.errors import ConfigError

SAMPLERS = ("blocks", "triplets")
SCHEDULES = ("constant", "cosine")


def _choices(*allowed: str) -> Any:
    return field(metadata={"choices": allowed})


def _min(low: float, why: str) -> Any:
    return field(metadata={"min": (low, why)})


@dataclass(frozen=True)
class SyntheticParams:
    """data.synthetic: the embedded synthetic faces, drawn by the pipeline itself."""

    persons: int = _min(2, "at least 2 persons")
    images_per_pair: int = _min(1, "at least 1 image per pair")
    size: int = _min(32, "at least 32 px")
    nuisance: float = _min(0.0, "0 or more")
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

    source: str = _choices("synthetic", "jaffe", "folder")
    synthetic: SyntheticParams
    jaffe: JaffeParams
    folder: FolderParams


@dataclass(frozen=True)
class PrepareParams:
    """prepare: how file names become labels, and which images train."""

    split: str = _choices("seed", "images", "pairs", "all")
    seed: int
    folds: int = _min(2, "at least 2")
    fold: int = _min(0, "0 or more")
    pattern: str


@dataclass(frozen=True)
class ModelParams:
    """model: the network and the embedding that is indexed."""

    arch: str = _choices("mobilenet_v2")
    pretrained: bool
    weights: str
    embedding: str = _choices("seed", "split")
    dim: int = _min(2, "at least 2")
    pooling: str = _choices("median", "mean", "max")
    members: int = _min(1, "at least 1 network")


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

    device: str = _choices("auto", "cpu", "cuda")
    seed: int
    threads: int = _min(0, "0 (all cores) or more")
    workers: int = _min(0, "0 (augment in the training process) or more")
    amp: bool
    epochs: int = _min(0, "0 or more")
    sampler: str = _choices(*SAMPLERS)
    batch_size: int = _min(1, "at least 1")
    forward_chunk: int = _min(0, "0 (one pass per batch) or more")
    lr: float
    schedule: str = _choices(*SCHEDULES)
    swa_from: float = _min(0, "0 (off) or a fraction of the epochs, below 1")
    weight_decay: float = _min(0, "0 or more")
    margin: float = _min(0, "0 or more")
    ce_weight: float
    ce_scale: float
    label_smoothing: float = _min(0, "0 (off) or a fraction below 1")
    recalibrate_bn: bool
    image_size: int = _min(32, "at least 32 px: MobileNetV2 downsamples 32x")
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

    size: int = _min(4, "at least 4 (pixels a side)")


@dataclass(frozen=True)
class FuseWeights:
    """features.fuse_weight: per axis, the network's weight beside PCA + LDA's (1: the network alone, 0: PCA + LDA
    alone). Per axis because the two need not generalise alike: on pairs never trained on, the network's identity
    half helps and its expression half hurts (docs/results.md)."""

    identity: float = _min(0, "a weight between 0 and 1")
    attribute: float = _min(0, "a weight between 0 and 1")

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
    """features: feature extraction, and the network's weight per axis in the indexed features beside PCA + LDA's."""

    batch_size: int = _min(1, "at least 1")
    fuse_weight: FuseWeights


@dataclass(frozen=True)
class HeldoutPairsParams:
    """heldout_pairs: zero-shot composition in folds of held-out pairs (0: off)."""

    folds: int = _min(0, "0 (off) or more; 2 or more to hold pairs out")
    seed: int

    def __post_init__(self) -> None:
        if self.folds == 1:
            raise ConfigError(
                "params: 'heldout_pairs.folds' is 1; use 0 (off) or 2 or more (1 would hold out every pair)"
            )


@dataclass(frozen=True)
class CheckpointParams:
    """checkpoint: the checkpoint that lets an interrupted training resume."""

    path: str
    resume: bool
    every_s: float = _min(0, "0 (after every epoch) or more seconds")


@dataclass(frozen=True)
class IndexParams:
    """index: the NGT graph index (build and search settings)."""

    edge_size_for_creation: int = _min(1, "at least 1")
    edge_size_for_search: int = _min(1, "at least 1")
    build_threads: int = _min(1, "at least 1")
    epsilon: float


@dataclass(frozen=True)
class EvaluateParams:
    """evaluate: the K of Recall@K (a hit among the first K results) and the seed's random-query protocol."""

    recall_at: tuple[int, ...]
    seed_queries: int = _min(1, "at least 1")
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
    heldout_pairs: HeldoutPairsParams
    checkpoint: CheckpointParams
    index: IndexParams
    evaluate: EvaluateParams


def _type_name(kind: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return names.get(kind, str(kind))


def _value(raw: Any, kind: Any, key: str, meta: Any) -> Any:
    if dataclasses.is_dataclass(kind):
        return build(kind, raw, key)
    if typing.get_origin(kind) is tuple and typing.get_args(kind)[1:] == (Ellipsis,):
        # a list of positive integers, any length (e.g. evaluate.recall_at)
        if not (
            isinstance(raw, (list, tuple))
            and raw
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in raw)
        ):
            raise ConfigError(f"params: '{key}' must be a non-empty list of positive integers, got {raw!r}")
        return tuple(sorted(set(raw)))
    if typing.get_origin(kind) is tuple:
        n = len(typing.get_args(kind))
        if not (
            isinstance(raw, (list, tuple))
            and len(raw) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
        ):
            raise ConfigError(f"params: '{key}' must be a list of {n} numbers, got {raw!r}")
        return tuple(float(v) for v in raw)
    ok = {
        bool: isinstance(raw, bool),
        int: isinstance(raw, int) and not isinstance(raw, bool),
        float: isinstance(raw, (int, float)) and not isinstance(raw, bool),
        str: isinstance(raw, str),
    }[kind]
    if not ok:
        raise ConfigError(f"params: '{key}' must be {_type_name(kind)}, got {raw!r}")
    value = float(raw) if kind is float else raw
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"params: '{key}' is {value!r}; allowed: {', '.join(meta['choices'])}")
    if "min" in meta and value < meta["min"][0]:
        raise ConfigError(f"params: '{key}' is {value!r}; it must be {meta['min'][1]}")
    return value


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """An instance of the settings class `cls` from a mapping: every field present, no other key, each checked."""
    where = f"'{prefix}'" if prefix else "params.yaml"
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    if not isinstance(raw, dict):
        raise ConfigError(f"params: {where} must be a mapping with keys {names}")
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"params: unknown key '{_join(prefix, unknown[0])}' in {where}; allowed: {names}")
    missing = [n for n in names if n not in raw]
    if missing:
        raise ConfigError(f"params: '{_join(prefix, missing[0])}' is missing from {where}; every key must be set")
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _value(raw[f.name], hints[f.name], _join(prefix, f.name), f.metadata) for f in fields})


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


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


def as_dict(settings: Any) -> dict[str, Any]:
    """Plain types (tuples as lists), e.g. for a model file or a fingerprint."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v

    return plain(dataclasses.asdict(settings))
