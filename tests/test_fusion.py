"""The fuse weights: chosen by a rule that sees only the training images (stage fuse, features.fuse: inner), or
fixed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from facearith.errors import ConfigError
from facearith.features.choice import key
from facearith.features.fusion import choose, score_weights, weight_grid

from .conftest import ROOT, stage_cmd
from .test_pipeline import TINY, _merge

ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _stage(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(stage_cmd(name), cwd=root, env=ENV, capture_output=True, text=True, timeout=600)


def _scores(values: dict[tuple[float, float], float], steps: int) -> dict:
    grid = weight_grid(steps)
    return {key(a, b): {"score": values.get((a, b), 0.0)} for a in grid for b in grid}


def test_choose_takes_the_best_neighbourhood_not_a_lone_peak():
    # a lone peak at (0, 1) beside zeros loses to a broad plateau of 0.8 around (0.5, 0.5)
    values = {(0.0, 1.0): 0.9} | {(a, b): 0.8 for a in (0.25, 0.5, 0.75) for b in (0.25, 0.5, 0.75)}
    assert choose(_scores(values, 4), 4) == (0.5, 0.5)
    # equal neighbourhoods: its own score decides, then the weights nearest the middle
    assert choose(_scores({}, 4), 4) == (0.5, 0.5)
    # params' fixed weights, scored beside the grid to compare, are never chosen off the grid
    scores = _scores({}, 4) | {key(0.3, 0.1): {"score": 1.0}}
    assert choose(scores, 4) == (0.5, 0.5)


def _features(rng, labels: np.ndarray, n_labels: int, width: int, noise: float) -> np.ndarray:
    """Unit rows: a centre per label plus noise (0: the label alone decides, large: nothing does)."""
    centres = rng.normal(size=(n_labels, width))
    x = centres[labels] + noise * rng.normal(size=(len(labels), width))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("good", ["network", "linear"])
def test_the_rule_gives_the_weight_to_the_part_that_generalises(good):
    """Per data set: where the network's features separate the held-out images and PCA + LDA's do not, the rule
    weights the network (and the other way round), on both axes."""
    rng = np.random.default_rng(0)
    ids, attrs = np.repeat(np.arange(5), 21), np.tile(np.repeat(np.arange(7), 3), 5)  # 5 x 7 pairs, 3 images
    trained = np.tile([True, True, False], 35)
    strong = {"network": 0.2, "linear": 5.0}[good], {"network": 5.0, "linear": 0.2}[good]
    net = np.concatenate([_features(rng, ids, 5, 16, strong[0]), _features(rng, attrs, 7, 16, strong[0])], axis=1)
    lin = _features(rng, ids, 5, 8, strong[1]), _features(rng, attrs, 7, 8, strong[1])
    scores = score_weights(net / np.sqrt(2), lin, ids.astype(str), attrs.astype(str), trained, 4, "split", 1)
    assert len(scores) == 25 and all(0 <= s["score"] <= 1 for s in scores.values())
    w = choose(scores, 4)
    assert (w[0] >= 0.75 and w[1] >= 0.75) if good == "network" else (w[0] <= 0.25 and w[1] <= 0.25), w
    best_part = max(scores[key(1, 1)]["score"], scores[key(0, 0)]["score"])
    assert scores[key(*w)]["score"] >= best_part - 0.05


def test_the_inner_split_holds_out_as_the_pipeline_does():
    from facearith.data.splits import inner_split

    pairs = [(i, a) for i in "ABC" for a in ("HA", "SA", "SU", "NE")]
    rows = [(i, a, r) for i, a in pairs for r in (1, 2, 3)]
    table = pd.DataFrame(rows, columns=["identity", "attribute", "repeat"]).assign(image_id=range(len(rows)))
    images = inner_split(table, "images", 0, 5)
    assert (~images).sum() == len(pairs)  # one image of each pair held out
    assert table[~images].groupby(["identity", "attribute"]).size().eq(1).all()
    by_pairs = inner_split(table, "pairs", 0, 4)
    held = table[~by_pairs]
    trained = set(zip(table[by_pairs].identity, table[by_pairs].attribute, strict=True))
    # whole pairs: a held-out pair has no image among those trained on
    assert len(held) == 3 * 3 and not set(zip(held.identity, held.attribute, strict=True)) & trained
    with pytest.raises(ConfigError, match="no pair with a second image.*features.fuse to 'fixed'"):
        inner_split(table[table["repeat"] == 1], "seed", 0, 5)
    one_pair = table[(table.identity == "A") & (table.attribute == "HA")]
    with pytest.raises(ConfigError, match="fewer than two .* pairs.*features.fuse to 'fixed'"):
        inner_split(one_pair, "pairs", 0, 5)


def test_the_inner_folds_hold_out_every_pair_once_or_draw_again():
    """features.fuse_folds: fold k of the pairs (each training pair held out by exactly one fold), or another
    draw of one image per pair; fold 0 is the single fold's split; a fold beyond the folds is refused."""
    from facearith.data.splits import inner_split

    pairs = [(i, a) for i in "ABC" for a in ("HA", "SA", "SU", "NE")]
    rows = [(i, a, r) for i, a in pairs for r in (1, 2, 3)]
    table = pd.DataFrame(rows, columns=["identity", "attribute", "repeat"]).assign(image_id=range(len(rows)))
    held = [~inner_split(table, "pairs", 0, 4, k) for k in range(4)]
    assert np.array_equal(~held[0], inner_split(table, "pairs", 0, 4))
    assert np.array_equal(np.sum(held, axis=0), np.ones(len(table)))  # every image held out by one fold, once
    draws = [inner_split(table, "images", 0, 4, k) for k in range(3)]
    assert np.array_equal(draws[0], inner_split(table, "images", 0, 4))
    assert all((~d).sum() == len(pairs) for d in draws) and not np.array_equal(draws[0], draws[1])
    with pytest.raises(ConfigError, match="'features.fuse_folds' asks for inner fold 5.*at most 4"):
        inner_split(table, "pairs", 0, 4, 4)


def test_the_folds_scores_are_averaged_pair_by_pair():
    from facearith.features.fusion import mean_scores

    a = {"0,0": {"composition": 0.5, "score": 0.5}, "1,1": {"composition": 1.0, "score": 0.75}}
    b = {"0,0": {"composition": 1.0, "score": 0.25}, "1,1": {"composition": 0.0, "score": 0.25}}
    assert mean_scores([a]) == a
    assert mean_scores([a, b]) == {
        "0,0": {"composition": 0.75, "score": 0.375},
        "1,1": {"composition": 0.5, "score": 0.5},
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The tiny synthetic set with three images per pair (two train, one held out) and a short training."""
    root = tmp_path_factory.mktemp("fuse")
    over = {"data": {"synthetic": {"images_per_pair": 3}}, "train": {"epochs": 5}, "features": {"fuse": "inner"}}
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), _merge(TINY, over))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("data", "prepare"):
        proc = _stage(root, stage)
        assert proc.returncode == 0, proc.stderr
    return root


def _choose(root: Path) -> dict:
    proc = _stage(root, "fuse")
    assert proc.returncode == 0, proc.stderr
    return json.loads((root / "models/fuse.json").read_text())


def _noise(path: str, seed: int) -> None:
    size = Image.open(path).size
    pixels = np.random.default_rng(seed).integers(0, 256, size=size[::-1], dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_the_rule_never_reads_a_heldout_image(prepared, tmp_path):
    import shutil

    root = tmp_path / "noise"
    shutil.copytree(prepared, root)
    table = pd.read_csv(root / "data/prepared/table.csv")
    before = _choose(root)
    assert before["rule"] == "inner" and len(before["scores"]) == 11 * 11  # params' fixed 0.3, 0.1 is on the grid
    assert before["inner"] == {**before["inner"], "trained": 21, "heldout": 21, "split": "images"}
    assert "seconds" not in before["inner"]  # timings only in the metrics: a same-weights rerun writes the same bytes
    metrics = json.loads((root / "metrics/fuse.json").read_text())
    assert (metrics["identity"], metrics["attribute"]) == (before["identity"], before["attribute"])
    assert set(metrics["inner"]) >= {"chosen", "network", "linear", "fixed", "seconds"}
    # every held-out image (the pipeline's, never trained on) replaced by noise: the same weights, the same scores
    for n, path in enumerate(table.path[~table["selected"]]):
        _noise(str(root / path), n)
    assert _choose(root) == before
    # and the check can fail: one training image replaced changes what the rule measures
    _noise(str(root / table.path[table["selected"]].iloc[0]), 99)
    assert _choose(root)["scores"] != before["scores"]


def test_fixed_weights_train_nothing(prepared, tmp_path):
    import shutil

    root = tmp_path / "fixed"
    shutil.copytree(prepared, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["features"] |= {"fuse": "fixed", "fuse_weight": {"identity": 0.6, "attribute": 0.2}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(root, "fuse")
    assert proc.returncode == 0, proc.stderr
    assert "fixed by features.fuse_weight" in proc.stdout
    assert json.loads((root / "metrics/fuse.json").read_text()) == {"identity": 0.6, "attribute": 0.2, "rule": "fixed"}
    # its inner network's file exists, as DVC wants of an output, and says there is none
    from facearith.errors import ModelError
    from facearith.training import network

    with pytest.raises(ModelError, match="inner.pt holds no network: features.fuse is fixed"):
        network.load(root / "models/inner.pt")


def test_a_split_without_second_images_is_refused_with_what_to_do(prepared, tmp_path):
    import shutil

    root = tmp_path / "seed"
    shutil.copytree(prepared, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["prepare"]["split"] = "seed"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _stage(root, "prepare").returncode == 0
    proc = _stage(root, "fuse")
    assert proc.returncode == 1 and "fuse: error:" in proc.stderr and "set features.fuse to 'fixed'" in proc.stderr
    assert not (root / "models/fuse.json").exists() and not (root / "metrics/fuse.json").exists()


def _weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _distance(a: dict, b: dict) -> float:
    return sum(float((a[k].double() - b[k].double()).norm()) for k in a if a[k].is_floating_point())


def test_train_continues_the_inner_network(prepared, tmp_path):
    """final.start inner: stage train's network is stage fuse's inner network trained further, final.epochs on all
    the training images, not a new one; a checkpoint of another start is not resumed; an inner network of other
    model settings is refused."""
    import shutil

    from facearith import config
    from facearith.training import checkpoints, members, network

    root = tmp_path / "continued"
    shutil.copytree(prepared, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["final"] = {"start": "inner", "epochs": 1}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _stage(root, "fuse").returncode == 0
    proc = _stage(root, "train")
    assert proc.returncode == 0, proc.stderr
    assert "continuing models/inner.pt" in proc.stdout
    metrics = json.loads((root / "metrics/train.json").read_text())
    assert metrics["start"] == "inner" and metrics["epochs"] == 1
    inner, model = _weights(root / "models/inner.pt"), _weights(root / "models/model.pt")
    # one epoch on from the inner network, against the untrained network its training started from
    p = config.load(root / "params.yaml")
    untrained = members.initial_member(p.model, p.train.seed, 1, 3, 7).state_dict()
    moved, trained = _distance(model, inner), _distance(untrained, inner)
    assert 0 < moved < 0.5 * trained, (moved, trained)
    # the checkpoint of a continuation is bound to the network it continued
    table = root / "data/prepared/table.csv"
    plain = checkpoints.fingerprint(p.model, p.train, table)
    assert checkpoints.fingerprint(p.model, p.train, table, root / "models/inner.pt") != plain
    # an inner network of other model settings (stage fuse not rerun) is refused, and nothing is written
    (root / "models/model.pt").unlink()
    params["model"]["dim"] = 16
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(root, "train")
    assert proc.returncode == 1 and "models/inner.pt was trained with other model settings" in proc.stderr
    assert "dvc repro" in proc.stderr and not (root / "models/model.pt").exists()
    with pytest.raises(Exception, match="not found"):
        network.load(root / "models/model.pt")


def test_more_inner_folds_average_their_scores_and_keep_fold_0s_network(prepared, tmp_path):
    """features.fuse_folds 2: a second inner network, scored on another draw of held-out training images; the
    scores are the two folds' mean, stage train continues fold 0's network (the single fold's), and no fold's
    checkpoint is left behind."""
    import shutil

    import torch

    one, two = tmp_path / "one", tmp_path / "two"
    for root, folds in ((one, 1), (two, 2)):
        shutil.copytree(prepared, root)
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["features"]["fuse_folds"] = folds
        params["checkpoint"]["path"] = "checkpoints/train.pt"
        (root / "params.yaml").write_text(yaml.safe_dump(params))
    single, double = _choose(one), _choose(two)
    assert single["inner"]["folds"] == 1 and "per_fold" not in single["inner"]
    assert double["inner"]["folds"] == 2 and len(double["inner"]["per_fold"]) == 2
    assert double["inner"]["per_fold"][0] == {**double["inner"]["per_fold"][0], "trained": 21, "heldout": 21}
    assert double["inner"]["per_fold"][0]["alone"] == key(single["identity"], single["attribute"])
    # each score is the mean of fold 0's (the single fold's) and a second fold's, itself a top-1 between 0 and 1
    second = {k: 2 * double["scores"][k]["score"] - s["score"] for k, s in single["scores"].items()}
    assert all(-1e-9 <= v <= 1 + 1e-9 for v in second.values())
    assert second != {k: s["score"] for k, s in single["scores"].items()}  # the second fold measured other images
    assert "per_fold" not in json.loads((two / "metrics/fuse.json").read_text())["inner"]
    weights = [_weights(root / "models/inner.pt") for root in (one, two)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not list((two / "checkpoints").glob("*")), list((two / "checkpoints").glob("*"))
