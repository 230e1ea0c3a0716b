"""`facearith query` as a user runs it: a subprocess on a tiny pipeline trained by the real stage scripts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from facearith.evaluation import run

from .conftest import ROOT, stage_cmd

BIN = Path(sys.executable).parent


def _env() -> dict:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="module")
def pipeline(trained_pipeline):
    return trained_pipeline


@pytest.fixture(scope="module")
def answers(pipeline) -> pd.DataFrame:
    """For every pair, what the library's own search over the same features finds first (exact search over every
    image, label vectors from the training images, as the query command searches): the command must agree with
    it, right answers and wrong ones, whatever model this CPU trained."""
    table = pd.read_csv(pipeline / "data/prepared/table.csv")
    feats = np.load(pipeline / "data/features.npy")
    return run.measure(feats, table, 5)["gallery.composition"]


def facearith(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "facearith"), "query", "--root", str(root), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_composition_finds_the_pair(pipeline, answers):
    person, expression = answers[answers.top1].iloc[0][["identity", "attribute"]]  # a pair the search gets right
    proc = facearith(pipeline, "--person", person, "--expression", expression, "-k", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{person} + {expression}"
    assert lines[1].split() == ["rank", "person", "expression", "split", "distance", "path"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 3 and [r[0] for r in rows] == ["1", "2", "3"]
    assert rows[0][1:3] == [person, expression]
    assert {r[3] for r in rows} <= {"train", "heldout"}


def test_json_output_parses_and_agrees_with_the_evaluation(pipeline, answers):
    # a pair the search gets wrong where there is one (the command must not be right by another way), else any
    row = answers.sort_values("top1", kind="stable").iloc[0]
    proc = facearith(pipeline, "--person", row.identity, "--expression", row.attribute, "--json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["query"] == {"person": row.identity, "expression": row.attribute}
    results = answer["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert (results[0]["person"], results[0]["expression"]) == (row.found_identity, row.found_attribute)
    ranks = [r["rank"] for r in results if (r["person"], r["expression"]) == (row.identity, row.attribute)]
    assert (ranks[0] if ranks else 0) == row["rank"]
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)
    assert answer["seconds"]["query"] >= 0


def test_image_query_with_inferred_expression_and_strip(pipeline, tmp_path):
    # an image from outside the dataset folder, in another format, with no extension
    src = next((pipeline / "data/raw").glob("BJ.SA1.*.tiff"))
    outside = tmp_path / "face"
    Image.open(src).convert("RGB").save(outside, format="PNG")
    out = tmp_path / "strip.png"
    proc = facearith(pipeline, "--image", str(outside), "--plus", "HA", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["query"]["minus_inferred"] is True
    assert answer["query"]["minus"] in {"AN", "DI", "FE", "HA", "NE", "SA", "SU"}
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 0
    proc = facearith(pipeline, "--image", str(outside), "--plus", "HA", "--minus", "SA")
    assert proc.returncode == 0 and "expression SA (given) -> HA" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--person", "ZZ", "--expression", "HA"], "unknown person 'ZZ'; known: BC, BG, BJ"),
        (["--person", "BC", "--expression", "XX"], "unknown expression 'XX'; known: AN, DI, FE, HA, NE, SA, SU"),
        (["--image", "/nonexistent.png", "--plus", "HA"], "image /nonexistent.png does not exist"),
        (["--person", "BC"], "give --person and --expression, or --image and --plus"),
    ],
)
def test_bad_input_is_one_clear_line(pipeline, args, message):
    proc = facearith(pipeline, *args)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_image_is_named(pipeline, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a face")
    proc = facearith(pipeline, "--image", str(bad), "--plus", "HA")
    assert proc.returncode == 1 and f"cannot read image {bad}" in proc.stderr and "Traceback" not in proc.stderr


def test_before_the_pipeline_ran(tmp_path):
    proc = facearith(tmp_path, "--person", "KA", "--expression", "HA")
    assert proc.returncode == 1 and "no dvc.yaml in" in proc.stderr and "--root" in proc.stderr
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    proc = facearith(tmp_path, "--person", "KA", "--expression", "HA")
    assert proc.returncode == 1
    assert "the pipeline has not run yet" in proc.stderr and "make repro" in proc.stderr


def _copy_pipeline(pipeline: Path, dest: Path) -> Path:
    shutil.copytree(pipeline, dest)
    return dest


def test_after_a_failed_run_it_says_so_and_what_to_rerun(pipeline, tmp_path):
    # a failed `dvc exp run -S train.epoch=5`: DVC removed the train stage's outputs, the bad key stayed
    root = _copy_pipeline(pipeline, tmp_path / "failed")
    (root / "models/model.pt").unlink()
    params = yaml.safe_load((root / "params.yaml").read_text())
    proc = facearith(root, "--person", "BC", "--expression", "HA")
    assert proc.returncode == 1 and "has not run yet" not in proc.stderr
    assert "the last run in" in proc.stderr and "failed or was interrupted" in proc.stderr
    assert "models/model.pt is missing" in proc.stderr and "Run `dvc repro` there" in proc.stderr
    params["train"]["epoch"] = 5
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = facearith(root, "--person", "BC", "--expression", "HA")
    assert "unknown key 'train.epoch'" in proc.stderr and "`git checkout params.yaml`" in proc.stderr


def test_search_settings_come_from_the_index_not_params(pipeline, tmp_path):
    """The index folder records what shaped it (settings.json); params.yaml edited after the run, even made
    invalid, changes no answer."""
    root = _copy_pipeline(pipeline, tmp_path / "eps")
    settings = json.loads((root / "data/index/settings.json").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert settings["epsilon"] == params["index"]["epsilon"]
    assert settings["fuse_weight"] == params["features"]["fuse_weight"]
    before = json.loads(facearith(root, "--person", "BC", "--expression", "HA", "--json", "-k", "10").stdout)
    params["index"]["epsilon"] = "wide"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = facearith(root, "--person", "BC", "--expression", "HA", "--json", "-k", "10")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"] == before["results"]


@pytest.mark.parametrize("name", ["features", "model", "linear"])
def test_outputs_that_are_not_what_the_index_was_built_from_are_refused(pipeline, tmp_path, name):
    root = _copy_pipeline(pipeline, tmp_path / name)
    path = {"features": "data/features.npy", "model": "models/model.pt", "linear": "models/linear.npz"}[name]
    with open(root / path, "ab") as f:  # as if one stage had been rerun alone, after the index was built
        f.write(b"\0")
    proc = facearith(root, "--person", "BC", "--expression", "HA")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{root / path} is not the {name} file that {root / 'data/index'} was built from" in proc.stderr
    assert "run `dvc repro`" in proc.stderr


def test_an_index_without_its_settings_asks_for_a_rerun(pipeline, tmp_path):
    root = _copy_pipeline(pipeline, tmp_path / "old")
    (root / "data/index/settings.json").unlink()
    proc = facearith(root, "--person", "BC", "--expression", "HA")
    assert proc.returncode == 1 and "settings.json not found" in proc.stderr and "dvc repro" in proc.stderr


def test_written_pictures_get_normal_permissions(pipeline, tmp_path):
    out = tmp_path / "strip.png"
    proc = subprocess.run(
        [
            "sh",
            "-c",
            f"umask 022 && {BIN / 'facearith'} query --root {pipeline} --person BC --expression HA --out {out}",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o644


def test_the_index_holds_every_image_and_results_say_their_split(pipeline):
    # a held-out image (repeat 2 of a pair) queried as itself with its own expression comes back first
    held = next((pipeline / "data/raw").glob("BG.SU2.*.tiff"))
    proc = facearith(pipeline, "--image", str(held), "--plus", "SU", "--minus", "SU", "-k", "42", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert len(results) == 42  # 3 persons x 7 expressions x 2 images, trained on or held out
    assert {r["split"] for r in results} == {"train", "heldout"}
    assert results[0]["path"].endswith(held.name) and results[0]["split"] == "heldout"


def test_an_image_is_embedded_as_the_index_was_even_after_params_changed(pipeline, tmp_path):
    import numpy as np

    from facearith.query import Pipeline

    # the network beside PCA + LDA, per axis: a training image's query feature is its indexed one
    root = _copy_pipeline(pipeline, tmp_path / "fused")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["features"]["fuse_weight"] = {"identity": 0.3, "attribute": 0.1}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("fuse", "features", "index"):
        proc = subprocess.run(stage_cmd(stage), cwd=root, env=_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    pipe = Pipeline.open(root)
    assert pipe.features.shape[1] > 16  # wider than the network's 2 x 8 head dimensions
    row = int(np.flatnonzero(pipe.table["selected"].to_numpy())[0])
    np.testing.assert_allclose(pipe.image_features(pipe.table.path.iloc[row]), pipe.features[row], atol=1e-5)
    image = next((root / "data/raw").glob("BG.SU2.*.tiff"))
    asked = ("--image", str(image), "--plus", "HA", "--json", "-k", "10")
    before = facearith(root, *asked)
    assert before.returncode == 0, before.stderr
    # params.yaml changed afterwards without a rerun: the query still embeds as the index was built (its
    # settings.json), so it answers what it answered, not a search of mismatched features
    params["features"]["fuse_weight"] = {"identity": 1.0, "attribute": 1.0}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    after = facearith(root, *asked)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["results"] == json.loads(before.stdout)["results"]
