"""Training: seeded triplet batches (blocks or the seed's triplets), the seed's augmentations, one pass per batch."""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from facearith.config import AugmentParams, ModelParams, TrainParams, as_dict, swa_first_epoch
from facearith.errors import ConfigError
from facearith.runtime import tune_allocator
from facearith.triplets import BY_ATTRIBUTE, BY_IDENTITY, epoch_batches

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class TrainResult:
    """The whole run, epochs replayed from a checkpoint included; `*_this_run` for this process alone."""

    losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # each epoch's time, in whichever run it ran
    seconds: float = 0.0  # all epochs plus BatchNorm re-estimation
    images_seen: int = 0  # images through the network (3 per anchor with the seed's triplet batches)
    anchors_seen: int = 0  # training images trained on: each is an anchor once per epoch
    epochs_resumed: int = 0  # epochs done by an earlier, interrupted run
    seconds_this_run: float = 0.0
    final_losses: list[float] = field(default_factory=list)  # each member's last epoch (train_members)

    @property
    def epochs_this_run(self) -> int:
        return len(self.losses) - self.epochs_resumed

    @property
    def final_loss(self) -> float | None:
        """The last epoch's loss; for an ensemble, the mean over its members' last epochs."""
        if self.final_losses:
            return float(np.mean(self.final_losses))
        return self.losses[-1] if self.losses else None

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds > 0 else 0.0

    @property
    def anchors_per_second(self) -> float:
        return self.anchors_seen / self.seconds if self.seconds > 0 else 0.0


def fingerprint(model_params: ModelParams, train_params: TrainParams, table_path: str | os.PathLike) -> str:
    """What a checkpoint must match to be resumed: the params, the table and the training code."""
    import hashlib
    import json

    from facearith import model, triplets

    settings = [as_dict(model_params), as_dict(train_params)]
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(Path(table_path).read_bytes())
    for module in (model, triplets, sys.modules[__name__]):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def seed_everything(seed: int, threads: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every new tensor with NaN, a check for reads of uninitialised memory that
    # no kernel here makes; the fill took 15% of a CPU training step (benchmarks/README.md, profile)
    torch.utils.deterministic.fill_uninitialized_memory = False


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


def forward(model: nn.Module, x: torch.Tensor, chunk: int = 0) -> dict[str, torch.Tensor]:
    """The model on a batch in one pass (chunk 0), or in passes of at most `chunk` images (BatchNorm then
    normalises each pass alone, as the seed's three passes of 16 did). Outputs in float32."""
    parts = [model(x)] if chunk <= 0 or chunk >= len(x) else [model(c) for c in x.split(chunk)]
    return {k: torch.cat([part[k] for part in parts]).float() for k in parts[0]}


def learning_rate(p: TrainParams, progress: float) -> float:
    """The learning rate `progress` epochs into training: constant (the seed), or a cosine from `lr` down to
    zero at the end of the last epoch."""
    if p.schedule == "cosine":
        return p.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress / max(p.epochs, 1), 1.0)))
    return p.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def classification_loss(
    out: dict[str, torch.Tensor],
    identities: torch.Tensor,
    attributes: torch.Tensor,
    scale: float,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of the cosine classifiers of both axes (NormFace-style, logits scaled by `scale`), with
    `smoothing` of each target's probability spread over the other labels (torch's label_smoothing)."""
    if "identity_logits" not in out:
        raise ConfigError("train.ce_weight > 0 needs model.embedding: split (the seed's embedding has no heads)")
    ce = nn.functional.cross_entropy
    return ce(out["identity_logits"] * scale, identities, label_smoothing=smoothing) + ce(
        out["attribute_logits"] * scale, attributes, label_smoothing=smoothing
    )


def triplet_loss(out: dict[str, torch.Tensor], rows: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean triplet loss over `rows` (anchor, positive, negative, kind), indices into the batch's outputs:
    identity triplets on the 'identity' vector, attribute triplets on 'attribute'."""
    loss_fn = nn.TripletMarginLoss(margin=margin, reduction="sum")
    total = out["identity"].new_zeros(())
    rows = rows.cpu()  # selected by kind on the host: a mask on a GPU would wait for the device
    for kind, key in ((BY_IDENTITY, "identity"), (BY_ATTRIBUTE, "attribute")):
        r = rows[rows[:, 3] == kind].to(out[key].device, non_blocking=True)
        if len(r):
            total = total + loss_fn(out[key][r[:, 0]], out[key][r[:, 1]], out[key][r[:, 2]])
    return total / max(len(rows), 1)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, images: Sequence[np.ndarray], size: int, device: torch.device, batch_size: int = 64
) -> None:
    """Re-estimate BatchNorm's running statistics on the clean (unaugmented) training images.

    From scratch, a few hundred steps with momentum 0.1 leave the running variance far from the real one, and
    an eval-mode network then maps every image to almost the same vector; exact statistics fix that.
    """
    from facearith.features import to_batch

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    model.train()
    for start in range(0, len(images), batch_size):
        model(to_batch(images[start : start + batch_size], size).to(device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def train(
    model: nn.Module,
    images: Sequence[np.ndarray],
    identities: np.ndarray,
    attributes: np.ndarray,
    params: TrainParams,
    device: torch.device,
    on_epoch: Callable[[int, float], None] | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    fingerprint: str = "",
    checkpoint_every_s: float = 0.0,
) -> TrainResult:
    """Train `model` in place on `images` with the labels given; returns the loss per epoch and the speed.

    With `checkpoint`, the state after an epoch (weights, optimiser, random generators) is written there: after
    the first epoch ending `checkpoint_every_s` or more after the last write (0: every epoch) and after the
    final one, so a finished run's checkpoint is complete; with `resume`, a checkpoint of the same `fingerprint`
    is continued, giving the same result as an uninterrupted run. `on_epoch` is called for every epoch, replayed
    ones included.
    """
    from tqdm.auto import tqdm

    p = params
    tune_allocator()
    rng = np.random.default_rng(p.seed)
    # bfloat16 autocast on CUDA (no loss scaling needed); float32 on the CPU, where bfloat16 was slower even with
    # AVX-512 bfloat16 instructions (benchmarks/README.md, profile)
    amp = bool(p.amp) and device.type == "cuda"
    tensors = [torch.from_numpy(np.ascontiguousarray(img))[None] for img in images]
    # label indices for the classification loss, in sorted label order (as the model's classes)
    id_index = torch.from_numpy(np.unique(identities, return_inverse=True)[1]).to(device)
    attr_index = torch.from_numpy(np.unique(attributes, return_inverse=True)[1]).to(device)
    augment = augmentation(p.image_size, p.augment)
    inputs = resident(tensors, augment, device) if is_static(p.augment) else tensors
    # AdamW's decoupled weight decay when asked for (it regularises small-data training); the seed's Adam otherwise.
    # foreach: each update as a few ops over all parameters, not ops per parameter (the same numbers, fewer calls)
    if p.weight_decay > 0:
        optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay, foreach=True)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr, foreach=True)
    model.to(device).train()
    result = TrainResult()
    # stochastic weight averaging: the equal mean of the weights at the end of each epoch from `swa_from`
    averaged = torch.optim.swa_utils.AveragedModel(model) if p.swa_from > 0 else None
    swa_first = swa_first_epoch(p.epochs, p.swa_from)
    first = 0
    if checkpoint and resume:
        first = _restore(checkpoint, fingerprint, model, optimizer, rng, result, averaged)
        for epoch, loss in enumerate(result.losses):
            if on_epoch is not None:
                on_epoch(epoch, loss)
    result.epochs_resumed = first
    start = last_write = time.perf_counter()
    bar = tqdm(range(first, p.epochs), desc="train", unit="epoch", disable=not progress)
    # cuDNN picks kernels for every new batch shape, 7-46 s each on an H200, and blocks vary in size; torch's own
    # CUDA kernels have no such stall (benchmarks/README.md, GPU). No effect on the CPU.
    with torch.backends.cudnn.flags(enabled=False):
        for epoch in bar:
            epoch_start = time.perf_counter()
            plan = epoch_batches(p.sampler, identities, attributes, rng, p.batch_size)
            # the epoch's loss stays on the device until the epoch ends: no host synchronisation in a step
            total, count = torch.zeros((), dtype=torch.float64, device=device), 0
            for step, (order, rows, x) in enumerate(batches(plan, inputs, augment, p.workers, device)):
                set_lr(optimizer, learning_rate(p, epoch + step / len(plan)))
                # the batch's images through the network together (in one pass unless forward_chunk)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    out = forward(model, x, p.forward_chunk)
                loss = triplet_loss(out, torch.from_numpy(rows), p.margin)
                if p.ce_weight > 0:
                    idx = torch.from_numpy(order).to(device, non_blocking=True)
                    ids, attrs = id_index[idx], attr_index[idx]
                    ce = classification_loss(out, ids, attrs, p.ce_scale, p.label_smoothing)
                    loss = loss + p.ce_weight * ce
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                anchors = len(np.unique(rows[:, 0])) if len(rows) else len(order)
                total += loss.detach().double() * anchors
                count += anchors
                result.images_seen += len(order)
            result.anchors_seen += len(images)
            epoch_loss = total.item() / max(count, 1)
            result.losses.append(epoch_loss)
            result.epoch_seconds.append(time.perf_counter() - epoch_start)
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if on_epoch is not None:
                on_epoch(epoch, epoch_loss)
            if averaged is not None and epoch >= swa_first:
                averaged.update_parameters(model)
            due = time.perf_counter() - last_write >= checkpoint_every_s or epoch + 1 == p.epochs
            if checkpoint and due:
                _save_checkpoint(checkpoint, fingerprint, epoch + 1, model, optimizer, rng, result, averaged)
                last_write = time.perf_counter()
                result.epoch_seconds[-1] = last_write - epoch_start  # the checkpoint is part of the epoch

    recalibrate_start = time.perf_counter()
    if averaged is not None and int(averaged.n_averaged) > 0:
        # the averaged weights replace the last ones; BatchNorm statistics are re-estimated for them below
        with torch.no_grad():
            for mine, mean in zip(model.parameters(), averaged.module.parameters(), strict=True):
                mine.copy_(mean)
    if p.recalibrate_bn:
        recalibrate_batchnorm(model, images, p.image_size, device)
    model.eval()
    end = time.perf_counter()
    result.seconds = sum(result.epoch_seconds) + (end - recalibrate_start)
    result.seconds_this_run = end - start
    return result


def _save_checkpoint(path, fingerprint, epochs_done, model, optimizer, rng, result, averaged=None) -> None:
    from facearith.model import save_bytes

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


def _restore(path, fingerprint, model, optimizer, rng, result, averaged=None) -> int:
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


def member_seed(seed: int, k: int) -> int:
    """Member k's training seed: member 0 is the single network of `seed`; the others are far enough apart that
    ensembles of neighbouring seeds (a grid over train.seed) share no member."""
    return seed + 1000 * k


def member_checkpoint(path: str | os.PathLike | None, k: int) -> Path | None:
    """Member k's checkpoint: member 0 writes `path` itself, member k a sibling `<stem>.member<k><suffix>`."""
    if not path:
        return None
    path = Path(path)
    return path if k == 0 else path.with_name(f"{path.stem}.member{k}{path.suffix}")


def initial_member(model_params: ModelParams, seed: int, threads: int, n_i: int, n_a: int) -> nn.Module:
    """One untrained network, built right after seeding everything with `seed` (as training builds it)."""
    from dataclasses import replace

    from facearith import model

    seed_everything(seed, threads)
    return model.build(replace(model_params, members=1), n_i * n_a, n_i, n_a)


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
    **kwargs: Any,
) -> tuple[nn.Module, TrainResult]:
    """`model_params.members` networks trained one after another, member k exactly as a single network of seed
    `member_seed(params.seed, k)` would be; one network, or their Ensemble. The result adds up the members';
    its losses run through member 0's epochs, then member 1's, and `on_epoch` counts on across members."""
    from dataclasses import replace

    from facearith import model

    n_i, n_a = n_labels
    nets, total = [], TrainResult()
    for k in range(model_params.members):
        p = replace(params, seed=member_seed(params.seed, k))
        net = initial_member(model_params, p.seed, p.threads, n_i, n_a)
        offset = k * params.epochs
        step = None if on_epoch is None else (lambda e, loss, o=offset: on_epoch(o + e, loss))
        mine = member_checkpoint(checkpoint, k)
        result = train(net, images, identities, attributes, p, device, step, checkpoint=mine, **kwargs)
        nets.append(net)
        total.losses += result.losses
        total.epoch_seconds += result.epoch_seconds
        total.final_losses += result.losses[-1:]
        for name in ("seconds", "images_seen", "anchors_seen", "epochs_resumed", "seconds_this_run"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
    return (nets[0] if len(nets) == 1 else model.Ensemble(nets)), total


def train_selected(
    table: pd.DataFrame,
    model_params: ModelParams,
    params: TrainParams,
    device: torch.device,
    **kwargs: Any,
) -> tuple[nn.Module, TrainResult]:
    """The network (or ensemble) of `model_params`, seeded, and trained on the table's selected rows
    (`train_members`' keyword arguments pass through: logging, checkpoint, resume, fingerprint)."""
    from facearith import data

    rows = table[table["selected"]]
    labels = (table.identity.nunique(), table.attribute.nunique())
    images = data.load_images(rows.path.tolist())
    identities, attributes = rows.identity.to_numpy(), rows.attribute.to_numpy()
    return train_members(images, identities, attributes, labels, model_params, params, device, **kwargs)


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
