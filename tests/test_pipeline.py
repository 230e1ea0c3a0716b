"""End to end: the real dvc.yaml and stages in a temporary git repository, on a tiny configuration."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from .conftest import ROOT, stage_cmd

TINY = {
    "data": {"synthetic": {"persons": 3, "images_per_pair": 2, "size": 48}},
    "model": {"dim": 8},
    "train": {"epochs": 1, "image_size": 32, "batch_size": 8, "threads": 1},
    "evaluate": {"seed_queries": 10},
    # two images per pair leave the inner rule none to hold out (tests/test_fusion.py runs it on three), so there
    # is no inner network to continue either
    "features": {"fuse": "fixed"},
    "final": {"start": "scratch"},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _exp_metrics(shown, name: str) -> dict:
    """metrics/eval.json of the experiment `name` in `dvc exp show --json` output."""
    if isinstance(shown, dict):
        if shown.get("name") == name and isinstance(shown.get("data"), dict):
            return shown["data"]["metrics"]["metrics/eval.json"]["data"]
        shown = list(shown.values())
    for value in shown if isinstance(shown, list) else []:
        found = _exp_metrics(value, name)
        if found:
            return found
    return {}


def _top1(tree: dict, prefix: str = "") -> dict[str, float]:
    """Every top-1 figure in a metrics tree, by its dotted key."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _top1(value, f"{prefix}{key}.")
        elif key == "top1":
            out[prefix + key] = value
    return out


def _new_repo(root: Path) -> Path:
    for name in ("dvc.yaml", "stages", "src", ".dvcignore", ".gitignore"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], root)
    _run(["git", "config", "user.email", "t@example.com"], root)
    _run(["git", "config", "user.name", "test"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "init"], root)
    return root


@pytest.fixture
def repo(tmp_path):
    """A fresh repository: the real dvc.yaml and stages on the tiny params, nothing run yet."""
    return _new_repo(tmp_path)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> tuple[Path, str]:
    """One `dvc repro` of a fresh repository, its outputs committed (read-only: tests take a copy); and what it
    printed."""
    root = _new_repo(tmp_path_factory.mktemp("reproduced"))
    out = _run(["dvc", "repro"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "run 1"], root)
    return root, out


@pytest.fixture
def ran(reproduced, tmp_path) -> Path:
    """A copy of the reproduced repository (its DVC cache and run cache included, not DVC's temporary files)."""
    copy = tmp_path / "ran"
    shutil.copytree(reproduced[0], copy, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    return copy


def test_repro_outputs_a_noop_and_the_exact_backend(reproduced, ran):
    assert all(
        f"Running stage '{s}'" in reproduced[1] for s in yaml.safe_load((ran / "dvc.yaml").read_text())["stages"]
    )
    train_m = json.loads((ran / "metrics/train.json").read_text())
    eval_m = json.loads((ran / "metrics/eval.json").read_text())
    assert train_m["epochs"] == 1 and train_m["images_per_second"] > 0
    assert train_m["anchors_per_second"] == train_m["images_per_second"]  # blocks: each image forwarded once
    assert eval_m["composition"]["queries"] == 21 and 0 <= eval_m["composition"]["top1"] <= 1
    assert eval_m["composition_seed"]["queries"] == 10
    assert eval_m["transfer"]["queries"] == 21 * 6 and eval_m["search"]["recall_at_1"] >= 0.99
    assert eval_m["heldout_images"]["composition"]["queries"] == 21  # the second image of each pair
    for base in ("network", "baseline_untrained", "baseline_pixels", "baseline_linear"):
        assert set(eval_m[base]) == {"composition", "transfer", "heldout_images", "gallery"}
    # indexed: the network's 2 x 8 head dimensions beside PCA + LDA's (stage linear), the network alone beside
    feats, network = (np.load(ran / f"data/{n}.npy") for n in ("features", "network_features"))
    assert network.shape == (42, 16) and feats.shape[0] == 42
    weight = yaml.safe_load((ran / "params.yaml").read_text())["features"]["fuse_weight"]
    assert 0 < weight["identity"] < 1 and 0 < weight["attribute"] < 1
    # stage fuse passed the fixed weights on (TINY: features.fuse fixed), and the index records them
    assert json.loads((ran / "metrics/fuse.json").read_text()) == {**weight, "rule": "fixed"}
    assert json.loads((ran / "data/index/settings.json").read_text())["fuse_weight"] == weight
    # per axis, the network's head then PCA + LDA's (3 persons, 7 expressions: 2 and 6 directions, split by sign)
    assert feats.shape[1] == 8 + 2 * 2 + 8 + 2 * 6
    np.testing.assert_allclose(feats[:, :8], np.sqrt(weight["identity"]) * network[:, :8], atol=1e-6)
    np.testing.assert_allclose(feats[:, 12:20], np.sqrt(weight["attribute"]) * network[:, 8:], atol=1e-6)
    # the index holds every image; the gallery protocols search all 42, label vectors from the 21 trained
    assert eval_m["gallery"]["composition"]["queries"] == 21 and eval_m["gallery"]["transfer"]["queries"] == 42 * 6
    assert (ran / "plots/gallery.png").stat().st_size > 0
    assert (ran / "dvclive/plots/metrics/loss.tsv").is_file()
    assert (ran / "data/index/ngt").is_dir()
    assert "up to date" in _run(["dvc", "repro"], ran)  # nothing changed: a no-op

    # the other search backend, end to end in a copy of the repository: only index and evaluate run again, and
    # where NGT's first hit was always the exact one (recall@1 1.0), exact search gives the same top-1 figures
    out = _run(["dvc", "exp", "run", "--temp", "-S", "index.backend=exact", "--name", "exact"], ran)
    assert "Running stage 'index'" in out and "Running stage 'train'" not in out
    exact_m = _exp_metrics(json.loads(_run(["dvc", "exp", "show", "--json"], ran)), "exact")
    assert exact_m["search"]["recall_at_1"] == 1.0
    if eval_m["search"]["recall_at_1"] == 1.0:
        assert _top1(exact_m) == _top1(eval_m) and len(_top1(eval_m)) > 20


def test_stages_import_the_library_beside_them_not_the_installed_one(repo):
    """A queued or --temp experiment runs in a copy of the repository; its stages must run that copy's src/, not
    the working tree's that `pip install -e .` points at (which may have changed since the experiment was queued)."""
    runner = repo / "src/facearith/runner.py"
    runner.write_text(runner.read_text() + '\nprint("the copy\'s own library")\n')
    assert "the copy's own library" in _run(["dvc", "repro", "data"], repo)


def test_every_plot_is_viewable_offline(ran):
    """dvc plots show draws data plots with Vega from the network; each has a PNG twin, which renders offline."""
    declared = yaml.safe_load((ran / "dvc.yaml").read_text())["plots"]
    vega = [next(iter(p)) for p in declared if isinstance(p, dict)]
    images = [p for p in declared if isinstance(p, str)]
    assert len(vega) == 4 and all(p.endswith(".png") for p in images)
    twins = [p for p in images if not p.endswith("gallery.png")]
    assert len(twins) == len(vega)  # loss curve, per person, per expression, confusion
    for png in images:
        with Image.open(ran / png) as im:
            assert im.format == "PNG" and min(im.size) > 100
    _run(["dvc", "plots", "show"], ran)
    html = (ran / "dvc_plots/index.html").read_text()
    shown = re.findall(r'<img src="([^"]+)"', html)
    assert len(shown) == len(images) and all((ran / "dvc_plots" / src).is_file() for src in shown)


def test_exp_run_in_the_workspace_reruns_what_changed_and_diffs_against_the_commit(ran):
    """Not --temp: the workspace's own run, from the committed outputs (DVC's cache), stage train onwards."""
    out = _run(["dvc", "exp", "run", "-S", "train.epochs=2", "--name", "two"], ran)
    assert "Running stage 'train'" in out and "Running stage 'data'" not in out
    two = _exp_metrics(json.loads(_run(["dvc", "exp", "show", "--json"], ran)), "two")
    assert two["composition"]["queries"] == 21
    assert yaml.safe_load((ran / "params.yaml").read_text())["train"]["epochs"] == 2  # the workspace's params
    # the workspace against the committed run
    diff = json.loads(_run(["dvc", "metrics", "diff", "--json"], ran))
    assert diff["metrics/train.json"]["epochs"] == {"old": 1, "new": 2, "diff": 1}
    params_diff = json.loads(_run(["dvc", "params", "diff", "--json"], ran))
    assert params_diff["params.yaml"]["train.epochs"] == {"old": 1, "new": 2, "diff": 1}
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], ran))["data"]
    assert "Training loss per epoch" in plots
    values = plots["Training loss per epoch"][0]["content"]["data"]["values"]
    assert [int(v["step"]) for v in values] == [0, 1]  # one point per epoch of the 2-epoch run


def test_stage_errors_are_one_clear_line(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["epochs"] = -3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(stage_cmd("train"), cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "train: error: params: 'train.epochs' is -3; it must be 0 or more"

    params["train"]["epochs"] = 1
    params["data"]["source"] = "jaffe"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(stage_cmd("data"), cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "request access" in proc.stderr and not (repo / "data/raw").exists()


def test_grid_runs_seeds_through_the_dvc_queue_and_collects_them(ran):
    """From a committed run, as a user's grid starts (`grid run` forces every stage of each queued experiment)."""
    _run([sys.executable, "-m", "facearith.experiments.grid", "run", "tiny", "--vary", "train.seed=0,1"], ran)
    _run([sys.executable, "-m", "facearith.experiments.grid", "collect", "--out", "grid.json"], ran)
    runs = json.loads((ran / "grid.json").read_text())["runs"]
    assert [(r["name"], r["group"], r["params"]["train"]["seed"]) for r in runs] == [
        ("tiny-seed0", "tiny", 0),
        ("tiny-seed1", "tiny", 1),
    ]
    assert all(r["eval"]["heldout_images"]["composition"]["queries"] > 0 for r in runs)
    assert all(r["train"]["epochs"] == 1 and r["machine"] for r in runs)
    # the experiments ran in the queue, not in the workspace: params.yaml is untouched
    assert yaml.safe_load((ran / "params.yaml").read_text())["train"]["seed"] == 0
    # run one again with other params: the queue still lists the earlier run of that name as a success, and
    # the grid must wait for the new one (collect then keeps the newer)
    _run(
        [
            sys.executable,
            "-m",
            "facearith.experiments.grid",
            "run",
            "tiny",
            "-S",
            "train.epochs=2",
            "--vary",
            "train.seed=0",
        ],
        ran,
    )
    _run([sys.executable, "-m", "facearith.experiments.grid", "collect", "--out", "grid.json"], ran)
    runs = json.loads((ran / "grid.json").read_text())["runs"]
    assert [(r["name"], r["train"]["epochs"]) for r in runs] == [("tiny-seed0", 2), ("tiny-seed1", 1)]
