"""The losses a training step adds up: triplets per axis, and the per-axis cosine classifiers."""

from __future__ import annotations

import torch
from torch import nn

from facearith.errors import ConfigError
from facearith.training.triplets import BY_ATTRIBUTE, BY_IDENTITY


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
