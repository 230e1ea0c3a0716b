"""Ask a trained pipeline: a person with an expression, or an image with another expression."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from facearith import arithmetic, config, pictures
from facearith.data.images import load_gray
from facearith.data.labels import read_table
from facearith.errors import DataError, IndexMissingError, QueryError
from facearith.fsutil import sha256
from facearith.search import backends


@dataclass
class Pipeline:
    """What the last `dvc repro` produced, loaded once: the indexed rows, their features, the index; the
    network and PCA + LDA are loaded on first use, to embed an image file as the features stage did."""

    root: Path
    table: object  # pandas.DataFrame of every image, in index order (the index holds them all)
    features: np.ndarray
    searcher: backends.Searcher
    persons: dict[str, np.ndarray]
    expressions: dict[str, np.ndarray]
    model_path: Path
    linear_path: Path
    fuse_weight: tuple[float, float]  # (identity, attribute), as the index recorded them (settings.json)
    _model: tuple | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | os.PathLike = ".") -> Pipeline:
        root = Path(root)
        paths = pipeline_paths(root)
        needed = {
            "table": root / paths["table"],
            "features": root / paths["features"],
            "index": root / paths["index"],
            "model": root / paths["model"],
            "linear": root / paths["linear"],
        }
        params_path = root / "params.yaml"  # read only to advise on an incomplete run: the index says how to search
        missing = [str(p) for p in needed.values() if not p.exists()]
        if len(missing) == len(needed):
            raise QueryError(
                f"the pipeline has not run yet in {root.resolve()} (missing: {', '.join(missing)}); "
                "run `make repro` (or `dvc repro`) there first"
            )
        if missing:
            # DVC removes a stage's outputs before running it: a run that failed or was stopped leaves some
            raise QueryError(
                f"the last run in {root.resolve()} failed or was interrupted: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing. {_params_state(params_path)}"
            )
        settings = index_settings(needed["index"], needed)
        table = read_table(needed["table"])
        mask = table["selected"].to_numpy()
        feats = np.load(needed["features"])
        if len(feats) != len(table):
            raise QueryError(f"{needed['features']} does not match {needed['table']}; run `dvc repro`")
        # the table's paths are relative to the pipeline's folder, which need not be the current one
        table["path"] = [p if os.path.isabs(p) else (root / p).as_posix() for p in table.path]
        searcher = backends.open_index(needed["index"], settings)  # as evaluate searched
        if len(searcher) != len(table):
            raise QueryError(f"{needed['index']} does not hold every image of {needed['table']}; run `dvc repro`")
        # label vectors from the training images only; the search runs over every image, held out or not
        persons = arithmetic.label_vectors(feats[mask], table.identity.to_numpy()[mask])
        expressions = arithmetic.label_vectors(feats[mask], table.attribute.to_numpy()[mask])
        return cls(
            root, table, feats, searcher, persons, expressions, needed["model"], needed["linear"],
            (settings["fuse_weight"]["identity"], settings["fuse_weight"]["attribute"]),
        )  # fmt: skip

    def vector(self, kind: str, name: str) -> np.ndarray:
        vectors = self.persons if kind == "person" else self.expressions
        if name not in vectors:
            raise QueryError(f"unknown {kind} {name!r}; known: {', '.join(sorted(vectors))}")
        return vectors[name]

    def image_features(self, path: str | os.PathLike) -> np.ndarray:
        """An image file's features (any format Pillow reads), as the features stage makes them."""
        if not Path(path).is_file():
            raise QueryError(f"image {path} does not exist")
        try:
            img = load_gray(path)
        except DataError as exc:
            raise QueryError(str(exc)) from None
        return self.features_of(img)

    def features_of(self, img: np.ndarray) -> np.ndarray:
        """A grey image's features, as the features stage makes them."""
        from facearith.features.extract import embed  # torch: only for a question with an image

        net, blob, lin = self.model()
        feature = embed(net, blob["image_size"], lin, self.fuse_weight, [img], 1, "cpu", prepared=True)[0][0]
        if feature.shape != self.features.shape[1:]:
            raise QueryError(
                f"an image's features have {feature.shape[0]} dimensions but the indexed ones "
                f"{self.features.shape[1]}: {self.model_path} or {self.linear_path} is not what the index was "
                "built from; run `dvc repro`"
            )
        return feature

    def model(self) -> tuple:
        """The trained network ready for inference (facearith.training.inference), its saved settings and
        PCA + LDA, loaded on first use."""
        from facearith.features import linear  # torch: only for a question with an image
        from facearith.training import inference, network

        if self._model is None:
            net, blob = network.load(self.model_path, "cpu")
            self._model = (inference.for_inference(net), blob, linear.load(self.linear_path))
        return self._model

    def nearest_expression(self, feature: np.ndarray) -> str:
        names = sorted(self.expressions)
        sims = np.stack([self.expressions[n] for n in names]) @ feature
        return names[int(np.argmax(sims))]

    def search(self, query: np.ndarray, k: int) -> list[dict]:
        ids, dists = self.searcher.search(query[None], k)
        out = []
        for rank, (i, d) in enumerate(zip(ids[0], dists[0], strict=True), start=1):
            if i < 0:
                continue
            row = self.table.iloc[int(i)]
            out.append(
                {
                    "rank": rank,
                    "path": row.path,
                    "person": row.identity,
                    "expression": row.attribute,
                    "split": "train" if row.selected else "heldout",
                    "distance": round(float(d), 6),
                }
            )
        return out


def index_settings(folder: Path, needed: dict[str, Path]) -> dict:
    """The index folder's settings.json, after checking that the features, the model and PCA + LDA are the ones
    it was built from: a query must embed and search as the pipeline did, whatever params.yaml says now."""
    try:
        settings = backends.read_settings(folder)
    except IndexMissingError as exc:
        raise QueryError(str(exc)) from None
    for name in ("features", "model", "linear"):
        if settings.get("sha256", {}).get(name) != sha256(needed[name]):
            raise QueryError(
                f"{needed[name]} is not the {name} file that {folder} was built from (changed since the last "
                "`dvc repro`, or a stage was run alone); run `dvc repro`"
            )
    return settings


def pipeline_paths(root: Path) -> dict[str, str]:
    """The pipeline's paths, as dvc.yaml declares them (its `vars: paths`), relative to `root`."""
    spec_path = root / "dvc.yaml"
    if not spec_path.is_file():
        raise QueryError(f"no dvc.yaml in {root.resolve()}; run from the pipeline's folder or give --root")
    spec = yaml.safe_load(spec_path.read_text()) or {}
    paths = {
        k: v for entry in spec.get("vars", []) if isinstance(entry, dict) for k, v in entry.get("paths", {}).items()
    }
    missing = {"table", "features", "index", "model", "linear"} - set(paths)
    if missing:
        raise QueryError(f"{spec_path} declares no {sorted(missing)} under vars: paths")
    return paths


_RESTORE_PARAMS = (
    "If a `dvc exp run -S ...` left it so, `git checkout params.yaml` restores the committed values; "
    "then run `dvc repro`"
)


def _params_state(params_path: Path) -> str:
    """What to do about an incomplete pipeline, by the state of its params.yaml."""
    try:
        config.load(params_path)
    except config.ConfigError as exc:
        return f"Its params are invalid ({exc}). {_RESTORE_PARAMS}."
    return "Run `dvc repro` there: it reruns what is missing and prints the error of a stage that fails."


def compose_query(
    pipe: Pipeline,
    person: str | None = None,
    expression: str | None = None,
    image: str | None = None,
    plus: str | None = None,
    minus: str | None = None,
) -> tuple[np.ndarray, dict]:
    """The query vector and a description of it, for either form of question."""
    if image is None:
        if not (person and expression):
            raise QueryError("give --person and --expression, or --image and --plus")
        q = arithmetic.compose([pipe.vector("person", person), pipe.vector("expression", expression)])
        return q, {"person": person, "expression": expression}
    if not plus:
        raise QueryError("--image needs --plus EXPRESSION (the expression to show)")
    pipe.vector("expression", plus)  # a bad name is refused before the image is embedded
    q, described = transfer_query(pipe, pipe.image_features(image), plus, minus)
    return q, {"image": str(image), **described}


def transfer_query(pipe: Pipeline, feature: np.ndarray, plus: str, minus: str | None) -> tuple[np.ndarray, dict]:
    """An image's features moved from expression `minus` (None: the nearest expression vector) to `plus`."""
    v_plus = pipe.vector("expression", plus)
    inferred = minus is None
    minus = minus or pipe.nearest_expression(feature)
    q = arithmetic.compose([feature, v_plus], [pipe.vector("expression", minus)])
    return q, {"plus": plus, "minus": minus, "minus_inferred": inferred}


def strip(pipe: Pipeline, described: dict, results: list[dict], out: str | os.PathLike) -> None:
    """One PNG: the query (the image, or the names) then its results, hits framed green, misses red."""
    if "image" in described:
        query, caption = load_gray(described["image"]), f"-{described['minus']} +{described['plus']}"
    else:
        query, caption = f"{described['person']} + {described['expression']}", "query"
    want_expr = described.get("expression") or described.get("plus")
    tiles = [
        (
            load_gray(r["path"]),
            f"{r['person']} {r['expression']} {r['distance']:.3f}",
            r["expression"] == want_expr and described.get("person", r["person"]) == r["person"],
        )
        for r in results
    ]
    pictures.save_png(pictures.strip(query, tiles, caption), out)


def run_query(args) -> dict:
    t0 = time.perf_counter()
    pipe = Pipeline.open(args.root)
    if args.image:
        pipe.model()  # loaded up front, so that its time is not the query's
    t1 = time.perf_counter()
    q, described = compose_query(pipe, args.person, args.expression, args.image, args.plus, args.minus)
    results = pipe.search(q, args.k)
    t2 = time.perf_counter()
    if args.out:
        strip(pipe, described, results, args.out)
    return {"query": described, "results": results, "seconds": {"load": round(t1 - t0, 4), "query": round(t2 - t1, 4)}}
