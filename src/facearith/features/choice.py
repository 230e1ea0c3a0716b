"""The fuse weights the index is built with and how they were chosen (stage fuse, facearith.features.fusion): a
small JSON record, read without torch by the index stage and the query."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from facearith.errors import ModelError
from facearith.fsutil import atomic_path


@dataclass(frozen=True)
class Choice:
    """The weights the index is built with, and how they were chosen."""

    identity: float
    attribute: float
    rule: str  # inner | fixed (features.fuse)
    # inner: "identity,attribute" -> {composition, transfer, score} on the inner held-out images, every pair tried
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    inner: dict[str, Any] = field(default_factory=dict)  # inner: images trained on and held out, folds, seconds

    def pair(self) -> tuple[float, float]:
        return self.identity, self.attribute

    def metrics(self) -> dict[str, Any]:
        """metrics/fuse.json: the weights, and for the inner rule the chosen and both parts' inner scores."""
        out: dict[str, Any] = {"identity": self.identity, "attribute": self.attribute, "rule": self.rule}
        if self.scores:
            fixed = self.inner.get("fixed") or {}
            scored = {
                "chosen": (self.identity, self.attribute),
                "network": (1.0, 1.0),
                "linear": (0.0, 0.0),
                "fixed": (fixed.get("identity"), fixed.get("attribute")),
            }
            out["inner"] = {k: v for k, v in self.inner.items() if k != "per_fold"}  # metrics are numbers
            for name, (w_id, w_attr) in scored.items():
                if w_id is not None and key(w_id, w_attr) in self.scores:
                    out["inner"][name] = self.scores[key(w_id, w_attr)]
        return out


def key(w_id: float, w_attr: float) -> str:
    return f"{w_id:g},{w_attr:g}"


def save(choice: Choice, path: str | os.PathLike) -> None:
    """Without the inner network's seconds (they stay in metrics/fuse.json): a rerun that chooses the same weights
    writes the same bytes, so DVC does not rerun features, index and evaluate for a timing."""
    record = asdict(choice)
    record["inner"] = {k: v for k, v in record["inner"].items() if k != "seconds"}
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=1)


def load(path: str | os.PathLike) -> Choice:
    if not os.path.isfile(path):
        raise ModelError(f"{path} not found; run `dvc repro fuse` to choose the fuse weights")
    try:
        with open(path) as f:
            return Choice(**json.load(f))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path} is not a fuse-weight choice ({exc}); run `dvc repro --force fuse`") from None
