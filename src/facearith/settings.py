"""Typed settings from plain mappings: a frozen dataclass per group, every key required, each value checked
against its type hint and its field's metadata (`choices`, `at_least`). An unknown, missing or wrong key is a
ConfigError of one line naming it. config.py declares params.yaml's groups with these."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any

from facearith.errors import ConfigError


def choices(*allowed: str) -> Any:
    return field(metadata={"choices": allowed})


def at_least(low: float, why: str) -> Any:
    return field(metadata={"min": (low, why)})


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


def as_dict(settings: Any) -> dict[str, Any]:
    """Plain types (tuples as lists), e.g. for a model file or a fingerprint."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v

    return plain(dataclasses.asdict(settings))
