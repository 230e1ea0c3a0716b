"""Networks as the train stage makes them: seeded members of an ensemble, each trained as a single network of
its own seed, on the table's training rows; what a saved model carries, and the run's metrics."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from facearith.config import FinalParams, ModelParams, TrainParams
from facearith.data.images import load_images
from facearith.errors import ModelError
from facearith.settings import as_dict
from facearith.training import loop, network
from facearith.training.checkpoints import member_checkpoint
from facearith.training.loop import TrainResult


def member_seed(seed: int, k: int) -> int:
    """Member k's training seed: member 0 is the single network of `seed`; the others are far enough apart that
    ensembles of neighbouring seeds (a grid over train.seed) share no member."""
    return seed + 1000 * k


def initial_member(model_params: ModelParams, seed: int, threads: int, n_i: int, n_a: int) -> nn.Module:
    """One untrained network, built right after seeding everything with `seed` (as training builds it)."""
    loop.seed_everything(seed, threads)  # through the module: a benchmark may replace it
    return network.build(replace(model_params, members=1), n_i * n_a, n_i, n_a)


def initial_members(model_params: ModelParams, params: TrainParams, n_i: int, n_a: int) -> list[nn.Module]:
    """The untrained members of `model_params.members`, each as its training starts from it."""
    k_seeds = [member_seed(params.seed, k) for k in range(model_params.members)]
    return [initial_member(model_params, seed, params.threads, n_i, n_a) for seed in k_seeds]


def train_members(
    images: Sequence[np.ndarray],
    identities: np.ndarray,
    attributes: np.ndarray,
    n_labels: tuple[int, int],
    model_params: ModelParams,
    params: TrainParams,
    device: torch.device,
    on_epoch: Callable[[int, float], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    starts: Sequence[nn.Module] | None = None,
    **kwargs: Any,
) -> tuple[nn.Module, TrainResult]:
    """`model_params.members` networks trained one after another, member k exactly as a single network of seed
    `member_seed(params.seed, k)` would be; one network, or their Ensemble. The result adds up the members';
    its losses run through member 0's epochs, then member 1's, and `on_epoch` counts on across members.
    `starts`: trained networks to continue, one per member (trained further in place), instead of new ones."""
    n_i, n_a = n_labels
    if starts is not None and len(starts) != model_params.members:
        raise ModelError(f"{len(starts)} networks to continue, but model.members is {model_params.members}")
    nets, total = [], TrainResult()
    for k in range(model_params.members):
        p = replace(params, seed=member_seed(params.seed, k))
        if starts is None:
            net = initial_member(model_params, p.seed, p.threads, n_i, n_a)
        else:
            loop.seed_everything(p.seed, p.threads)  # the continuation's draws are seeded as a new network's
            net = starts[k]
        offset = k * params.epochs
        step = None if on_epoch is None else (lambda e, loss, o=offset: on_epoch(o + e, loss))
        mine = member_checkpoint(checkpoint, k)
        result = loop.train(net, images, identities, attributes, p, device, step, checkpoint=mine, **kwargs)
        nets.append(net)
        total.losses += result.losses
        total.epoch_seconds += result.epoch_seconds
        total.final_losses += result.losses[-1:]
        for name in ("seconds", "images_seen", "anchors_seen", "epochs_resumed", "seconds_this_run"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
    return (nets[0] if len(nets) == 1 else network.Ensemble(nets)), total


def train_selected(
    table: pd.DataFrame,
    model_params: ModelParams,
    params: TrainParams,
    device: torch.device,
    **kwargs: Any,
) -> tuple[nn.Module, TrainResult]:
    """The network (or ensemble) of `model_params`, seeded, and trained on the table's selected rows
    (`train_members`' keyword arguments pass through: logging, checkpoint, resume, fingerprint)."""
    rows = table[table["selected"]]
    labels = (table.identity.nunique(), table.attribute.nunique())
    images = load_images(rows.path.tolist())
    identities, attributes = rows.identity.to_numpy(), rows.attribute.to_numpy()
    return train_members(images, identities, attributes, labels, model_params, params, device, **kwargs)


def continuing(path: str | os.PathLike, model_params: ModelParams, params: TrainParams) -> list[nn.Module]:
    """The networks of a saved model (stage fuse's inner network), to continue training with these settings: its
    architecture and input size must be theirs."""
    net, blob = network.load(path)
    saved = {k: v for k, v in blob["model"].items() if k not in ("pretrained", "weights")}
    wanted = {k: v for k, v in as_dict(model_params).items() if k not in ("pretrained", "weights")}
    if saved != wanted or blob.get("image_size") != params.image_size:
        raise ModelError(
            f"{path} was trained with other model settings or train.image_size than params.yaml's; "
            "run `dvc repro` (stage fuse trains it again)"
        )
    return network.members_of(net)


def final_start(
    path: str | os.PathLike, model_params: ModelParams, params: TrainParams, final: FinalParams
) -> tuple[list[nn.Module] | None, TrainParams]:
    """Where stage train starts (final.start): stage fuse's inner network at `path`, continued for final.epochs with
    a fresh optimiser, or a new network (None) for train.epochs."""
    if final.start == "scratch":
        return None, params
    return continuing(path, model_params, params), replace(params, epochs=final.epochs)


def model_extra(table: pd.DataFrame, params: TrainParams) -> tuple[int, dict[str, Any]]:
    """What a saved model carries beside its weights: the class count, the labels and the input size."""
    persons, expressions = sorted(table.identity.unique()), sorted(table.attribute.unique())
    extra = {"persons": persons, "expressions": expressions, "image_size": params.image_size}
    return len(persons) * len(expressions), extra


def run_metrics(result: TrainResult, params: TrainParams, device: torch.device) -> dict[str, Any]:
    """metrics/train.json: the whole run (a resumed run counts the epochs and seconds of the run it continued)."""
    return {
        "loss": result.final_loss,
        "epochs": params.epochs,
        "seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 2),  # through the network
        "anchors_per_second": round(result.anchors_per_second, 2),  # training images trained on
        "epochs_this_run": result.epochs_this_run,  # of all members together
        "seconds_this_run": round(result.seconds_this_run, 2),
        "device": device.type,
    }


def summary(result: TrainResult, params: TrainParams) -> str:
    resumed = f", {result.epochs_resumed} of them before a resume" if result.epochs_resumed else ""
    members = len(result.final_losses)
    epochs = f"{members} networks x {params.epochs} epochs" if members > 1 else f"{params.epochs} epochs"
    return f"train: {epochs} in {result.seconds:.1f} s{resumed} ({result.images_per_second:.1f} images/s)"
