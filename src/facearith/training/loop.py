"""The training loop: seeded batches (blocks or the seed's triplets), one optimiser step per batch, weights
averaged over the last epochs, BatchNorm statistics re-estimated at the end, checkpoints on the way."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from facearith.config import TrainParams, swa_first_epoch
from facearith.data.tensors import to_batch
from facearith.runtime import tune_allocator
from facearith.training import checkpoints
from facearith.training.inputs import augmentation, batches, is_static, resident
from facearith.training.losses import classification_loss, triplet_loss
from facearith.training.triplets import epoch_batches


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


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, images: Sequence[np.ndarray], size: int, device: torch.device, batch_size: int = 64
) -> None:
    """Re-estimate BatchNorm's running statistics on the clean (unaugmented) training images.

    From scratch, a few hundred steps with momentum 0.1 leave the running variance far from the real one, and
    an eval-mode network then maps every image to almost the same vector; exact statistics fix that.
    """
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
        first = checkpoints.restore(checkpoint, fingerprint, model, optimizer, rng, result, averaged)
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
                checkpoints.save(checkpoint, fingerprint, epoch + 1, model, optimizer, rng, result, averaged)
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
