"""Which system each key prefix of metrics/eval.json is, and what a run indexed: the network beside PCA + LDA with
fixed weights (features.fuse_weight) or weights chosen on its training images (stage fuse, metrics/fuse.json)."""

from __future__ import annotations

from typing import Any

from facearith.experiments.grid import get

FUSED, NETWORK, LINEAR = "network + PCA + LDA", "network", "PCA + LDA"
BASELINES = [
    (LINEAR, "baseline_linear."),
    ("untrained network", "baseline_untrained."),
    ("raw pixels", "baseline_pixels."),
]
ORDER = [FUSED, NETWORK] + [name for name, _ in BASELINES]


def fuse_weights(params: dict[str, Any]) -> tuple[Any, Any]:
    """features.fuse_weight as (identity, attribute): per axis since 2026-11-30, one number for both before."""
    weight = get(params, "features.fuse_weight")
    if isinstance(weight, dict):
        return weight.get("identity"), weight.get("attribute")
    return weight, weight


def with_choice(params: dict[str, Any], fuse: dict[str, Any] | None) -> dict[str, Any]:
    """A run's params with the weights its index was built with: stage fuse's (metrics/fuse.json) where it ran
    (since 2026-12-01), features.fuse_weight before."""
    if not fuse:
        return params
    features = {**(params.get("features") or {}), "fuse": fuse.get("rule", "fixed")}
    features["fuse_weight"] = {"identity": fuse.get("identity"), "attribute": fuse.get("attribute")}
    return {**params, "features": features}


def chosen(params: dict[str, Any]) -> bool:
    """The weights were chosen on the run's training images (features.fuse: inner), not fixed."""
    return get(params, "features.fuse") == "inner"


def indexed_system(params: dict[str, Any]) -> str:
    """What the indexed features are, by features.fuse_weight (1: the network, 0: PCA + LDA); chosen weights are
    the fusion whatever they came out as, so that a group's runs share one column."""
    if chosen(params):
        return FUSED
    weights = fuse_weights(params)
    if weights == (None, None) or weights == (1, 1):
        return NETWORK
    return LINEAR if weights == (0, 0) else FUSED


def systems(evaluation: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    """Each system's key prefix in metrics/eval.json. The top level is what was indexed; since the index holds the
    network's features beside PCA + LDA's, the network alone is `network.*`. Runs made before had the network at
    the top and the fusion, measured beside it, under `fused_linear.*`."""
    if "network" in evaluation:
        found = {indexed_system(params): "", NETWORK: "network."}
    else:
        found = {NETWORK: "", FUSED: "fused_linear."}
    for name, prefix in BASELINES:
        found.setdefault(name, prefix)
    return found


def measured(runs: list[tuple[dict[str, Any], dict[str, Any]]], keys: list[str]) -> list[str]:
    """The systems with a value for any of `keys` in any of the (metrics, params) `runs`, in ORDER (runs made before
    a system existed have none; its column is left out rather than filled with dashes)."""
    return [
        name
        for name in ORDER
        if any(name in (found := systems(e, p)) and get(e, found[name] + k) is not None for e, p in runs for k in keys)
    ]


def value(evaluation: dict[str, Any], params: dict[str, Any], system: str, key: str) -> Any:
    prefix = systems(evaluation, params).get(system)
    return None if prefix is None else get(evaluation, prefix + key)


def indexed(evaluation: dict[str, Any], params: dict[str, Any], weights: bool = True) -> str:
    """Which system the index held, and (weights) with what weight."""
    if "network" not in evaluation:
        return "the network's features"
    name = indexed_system(params)
    if name != FUSED:
        return name
    w_id, w_attr = fuse_weights(params)
    if chosen(params):
        which = f" (identity {w_id:g}, attribute {w_attr:g})" if weights else ""
        return f"{name}, weights chosen on the training images{which}"
    weight = w_id if w_id == w_attr else f"identity {w_id}, attribute {w_attr}"
    return f"{name} (features.fuse_weight {weight})"


def indexed_runs(runs: list[dict[str, Any]]) -> str:
    """What a group's runs indexed: for chosen weights, each run's (identity / attribute)."""
    if not all(chosen(run_params(r)) for r in runs):
        return indexed(runs[0]["eval"], run_params(runs[0]))
    each = ", ".join(weights_text(r) for r in runs)
    return f"{FUSED}, weights chosen on each run's training images (identity / attribute: {each})"


def weights_text(run: dict[str, Any]) -> str:
    w_id, w_attr = fuse_weights(run_params(run))
    return "-" if w_id is None else f"{w_id:g} / {w_attr:g}"


def run_params(run: dict[str, Any]) -> dict[str, Any]:
    return with_choice(run["params"], run.get("fuse"))
