"""Checkpoints that let an interrupted training resume exactly: the weights, the optimiser, every random
generator and the run so far, kept only for the same params, data and training code (the fingerprint)."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import torch

from facearith.config import ModelParams, TrainParams
from facearith.settings import as_dict
from facearith.training.network import save_bytes


def fingerprint(
    model_params: ModelParams, train_params: TrainParams, table_path: str | os.PathLike, start: str | os.PathLike = ""
) -> str:
    """What a checkpoint must match to be resumed: the params, the table, the training code (this package) and the
    network training `start`ed from (a file; "": a new one)."""
    settings = [as_dict(model_params), as_dict(train_params)]
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(Path(table_path).read_bytes())
    if start:
        h.update(Path(start).read_bytes())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        h.update(module.read_bytes())
    return h.hexdigest()


def save(path, fingerprint, epochs_done, model, optimizer, rng, result, averaged=None) -> None:
    state = {
        "fingerprint": fingerprint,
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "losses": list(result.losses),
        "epoch_seconds": list(result.epoch_seconds),
        "images_seen": result.images_seen,
        "anchors_seen": result.anchors_seen,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
        "python_rng": random.getstate(),
    }
    if averaged is not None:
        state["averaged"] = averaged.state_dict()
    save_bytes(state, path)


def restore(path, fingerprint, model, optimizer, rng, result, averaged=None) -> int:
    """Load a matching checkpoint into the training state; return the number of epochs it had done."""
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        print(f"train: ignoring unreadable checkpoint {path} ({exc.__class__.__name__}); starting afresh")
        return 0
    if state.get("fingerprint") != fingerprint:
        print(f"train: checkpoint {path} is of other params, data or code; starting afresh")
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if averaged is not None and "averaged" in state:
        averaged.load_state_dict(state["averaged"])
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    random.setstate(state["python_rng"])
    # the earlier run's epochs count in the totals, so that a resumed run reports the whole run
    result.losses = list(state["losses"])
    result.epoch_seconds = list(state.get("epoch_seconds", []))
    result.images_seen = int(state.get("images_seen", 0))
    result.anchors_seen = int(state.get("anchors_seen", 0))
    print(f"train: resuming from {path} after epoch {state['epochs_done']}")
    return state["epochs_done"]


def member_checkpoint(path: str | os.PathLike | None, k: int) -> Path | None:
    """Member k's checkpoint: member 0 writes `path` itself, member k a sibling `<stem>.member<k><suffix>`."""
    if not path:
        return None
    path = Path(path)
    return path if k == 0 else path.with_name(f"{path.stem}.member{k}{path.suffix}")


def remove(path: str | os.PathLike | None, members: int) -> None:
    """Every member's checkpoint, once training has finished and nothing is left to resume."""
    for k in range(members):
        mine = member_checkpoint(path, k)
        if mine:
            mine.unlink(missing_ok=True)
