"""params.yaml: load and validate, so that a typo fails at the start of a stage in one clear line."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from facearith.data import DEFAULT_PATTERN
from facearith.triplets import SAMPLERS


class ConfigError(ValueError):
    """A parameter is unknown, of the wrong type or out of range."""


# The full parameter tree with its defaults; a value's type is the type a user must give.
DEFAULTS: dict[str, Any] = {
    "data": {
        "source": "synthetic",
        "synthetic": {"persons": 10, "images_per_pair": 3, "size": 128, "seed": 0},
        "jaffe": {"url": "", "token_env": "JAFFE_TOKEN", "archive": "", "sha256": ""},
        "folder": {"path": ""},
    },
    "prepare": {
        "one_per_pair": True,
        "pattern": DEFAULT_PATTERN,
    },
    "model": {
        "arch": "mobilenet_v2",
        "pretrained": False,
        "weights": "",
        "embedding": "split",
        "dim": 64,
        "pooling": "median",
    },
    "train": {
        "device": "auto",
        "seed": 0,
        "threads": 0,
        "workers": 0,
        "amp": True,
        "epochs": 80,
        "sampler": "blocks",
        "batch_size": 16,
        "forward_chunk": 0,
        "lr": 0.001,
        "weight_decay": 0.0,
        "margin": 1.0,
        "ce_weight": 1.0,
        "ce_scale": 16.0,
        "recalibrate_bn": True,
        "image_size": 64,
        "augment": {
            "crop_scale": [1.0, 1.0],
            "jitter": [0.0, 0.0, 0.0, 0.0],
            "hflip": False,
            "degrees": 0.0,
            "shear": 0.0,
        },
    },
    "features": {"batch_size": 16},
    "checkpoint": {"path": "checkpoints/train.pt", "resume": True},
    "index": {"edge_size_for_creation": 10, "edge_size_for_search": 40, "epsilon": 0.1},
    "evaluate": {"k": 5, "seed_queries": 100, "seed": 0},
    "heldout_pairs": {"folds": 0, "seed": 0},
}

CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("synthetic", "jaffe", "folder"),
    "model.arch": ("mobilenet_v2",),
    "model.embedding": ("seed", "split"),
    "model.pooling": ("median", "mean", "max"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.sampler": SAMPLERS,
}

# (lowest allowed, why) for numbers that must be at least something.
MINIMUM: dict[str, tuple[float, str]] = {
    "data.synthetic.persons": (2, "at least 2 persons"),
    "data.synthetic.images_per_pair": (1, "at least 1 image per pair"),
    "data.synthetic.size": (32, "at least 32 px"),
    "model.dim": (2, "at least 2"),
    "train.epochs": (0, "0 or more"),
    "train.batch_size": (1, "at least 1"),
    "train.forward_chunk": (0, "0 (one pass per batch) or more"),
    "train.threads": (0, "0 (all cores) or more"),
    "train.workers": (0, "0 (augment in the training process) or more"),
    "train.image_size": (32, "at least 32 px: MobileNetV2 downsamples 32x"),
    "features.batch_size": (1, "at least 1"),
    "index.edge_size_for_creation": (1, "at least 1"),
    "index.edge_size_for_search": (1, "at least 1"),
    "evaluate.k": (1, "at least 1"),
    "evaluate.seed_queries": (1, "at least 1"),
    "heldout_pairs.folds": (0, "0 (off) or more; 2 or more to hold pairs out"),
}


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}[type(value)]


def _check(value: Any, default: Any, key: str) -> Any:
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{key}' must be a mapping with keys {sorted(default)}")
        unknown = sorted(set(value) - set(default))
        if unknown:
            where = f"'{key}'" if key else "the top level"
            raise ConfigError(f"params: unknown key '{_join(key, unknown[0])}' in {where}; allowed: {sorted(default)}")
        return {k: _check(value[k], d, _join(key, k)) if k in value else copy.deepcopy(d) for k, d in default.items()}
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
        value = value if value is not None else ""
    elif isinstance(default, list):
        ok = (
            isinstance(value, list)
            and len(value) == len(default)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        if not ok:
            raise ConfigError(f"params: '{key}' must be a list of {len(default)} numbers, got {value!r}")
    else:  # pragma: no cover - the tree holds only the types above
        raise TypeError(key)
    if not ok:
        raise ConfigError(f"params: '{key}' must be {_type_name(default)}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"params: '{key}' is {value!r}; allowed: {', '.join(CHOICES[key])}")
    if key in MINIMUM and value < MINIMUM[key][0]:
        raise ConfigError(f"params: '{key}' is {value!r}; it must be {MINIMUM[key][1]}")
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def validate(params: dict[str, Any] | None) -> dict[str, Any]:
    """Return the full parameter tree: defaults filled in, everything checked."""
    params = _check(params or {}, DEFAULTS, "")
    lo, hi = params["train"]["augment"]["crop_scale"]
    if not 0 < lo <= hi <= 1:
        raise ConfigError(f"params: 'train.augment.crop_scale' is {[lo, hi]}; need 0 < low <= high <= 1")
    if params["train"]["lr"] <= 0:
        raise ConfigError("params: 'train.lr' must be greater than 0")
    if params["heldout_pairs"]["folds"] == 1:
        raise ConfigError("params: 'heldout_pairs.folds' is 1; use 0 (off) or 2 or more (1 would hold out every pair)")
    if params["train"]["weight_decay"] < 0:
        raise ConfigError("params: 'train.weight_decay' must be 0 or more")
    if params["train"]["margin"] < 0:
        raise ConfigError("params: 'train.margin' must be 0 or more")
    return params


def load(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params: {path} not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"params: {path} is not valid YAML: {exc}") from None
    return validate(raw)
