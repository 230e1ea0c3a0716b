"""The protocols the evaluate stage measures, in one registry: metrics/eval.json, the results tables
(`facearith.experiments.tables`) and `make compare` all follow it. Adding a protocol is one entry here: a name
(its dotted key in the metrics), a row label, and a function from a Scene to its records (`protocols`), or to
None where the data cannot ask it (no held-out images)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from facearith.evaluation.protocols import (
    Indexed,
    composition_records,
    recognition_records,
    transfer_records,
)
from facearith.search.backends import Searcher
from facearith.search.exact import ExactSearcher


@dataclass(frozen=True)
class Scene:
    """What every protocol is given: the features of every image (the table's rows), their labels, which rows
    trained, how deep to search, and a searcher over every row (the built index, or exact search)."""

    features: np.ndarray
    identities: np.ndarray
    attributes: np.ndarray
    selected: np.ndarray
    depth: int
    searcher: Searcher

    @cached_property
    def trained(self) -> Indexed:
        """The training images alone, searched exactly; label vectors from them."""
        s = self.selected
        return Indexed(self.features[s], self.identities[s], self.attributes[s], ExactSearcher(self.features[s]))

    @cached_property
    def heldout(self) -> Indexed | None:
        """The held-out images alone, searched exactly, with the training images' label vectors: a user's
        v(person) and v(expression) come from what was trained on, never from the images searched."""
        h = ~self.selected
        if not h.any():
            return None
        feats = self.features[h]
        vectors = self.trained.vectors()
        return Indexed(feats, self.identities[h], self.attributes[h], ExactSearcher(feats), given_vectors=vectors)

    @cached_property
    def gallery(self) -> Indexed:
        """Visual search over every image, trained on or held out, by `searcher`; label vectors from the
        training images."""
        return Indexed(self.features, self.identities, self.attributes, self.searcher, vectors_from=self.selected)


Records = Callable[[Scene], "pd.DataFrame | None"]


@dataclass(frozen=True)
class Protocol:
    label: str  # its row in the results tables
    records: Records


def _composition(idx: Indexed, depth: int) -> pd.DataFrame:
    """Every pair that has both label vectors, composed and searched."""
    return composition_records(idx, idx.askable_pairs(), depth)


def _transfer(idx: Indexed, depth: int) -> pd.DataFrame:
    """Every image whose labels both have vectors, moved to each other expression, its own image excluded."""
    rows = idx.known_rows()
    ident, attr = np.asarray(idx.identities), np.asarray(idx.attributes)
    return transfer_records(idx, idx.features[rows], ident[rows], attr[rows], rows, depth=depth)


def _heldout(protocol: Callable[[Indexed, int], pd.DataFrame]) -> Records:
    return lambda s: None if s.heldout is None else protocol(s.heldout, s.depth)


def _recognised(axis: str) -> Records:
    """Each held-out image's nearest label vector on one axis: which half of a composition fails."""

    def records(s: Scene) -> pd.DataFrame | None:
        if s.heldout is None:
            return None
        id_vecs, attr_vecs = s.heldout.vectors()
        labels = s.heldout.identities if axis == "identity" else s.heldout.attributes
        return recognition_records(s.heldout.features, labels, id_vecs if axis == "identity" else attr_vecs)

    return records


PROTOCOLS: dict[str, Protocol] = {
    "composition": Protocol("composition (trained images)", lambda s: _composition(s.trained, s.depth)),
    "transfer": Protocol("transfer (trained images)", lambda s: _transfer(s.trained, s.depth)),
    "heldout_images.composition": Protocol("composition, held-out images", _heldout(_composition)),
    "heldout_images.transfer": Protocol("transfer, held-out images", _heldout(_transfer)),
    "heldout_images.identity": Protocol("person recognised, held-out images", _recognised("identity")),
    "heldout_images.attribute": Protocol("expression recognised, held-out images", _recognised("attribute")),
    "gallery.composition": Protocol("composition, every image indexed", lambda s: _composition(s.gallery, s.depth)),
    "gallery.transfer": Protocol("transfer, every image indexed", lambda s: _transfer(s.gallery, s.depth)),
}


def run(scene: Scene, protocols: Mapping[str, Protocol]) -> dict[str, pd.DataFrame]:
    """Each protocol's records on `scene`, by name, leaving out those the data cannot ask."""
    out = {name: p.records(scene) for name, p in protocols.items()}
    return {name: rec for name, rec in out.items() if rec is not None}
