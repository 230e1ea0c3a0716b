"""The benchmark's own pieces: its data is what it claims, and `--quick` runs every part end to end."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facearith import config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run  # noqa: E402
import seed_way  # noqa: E402


def test_search_vectors_are_clustered_nonnegative_unit():
    x = run.clustered_vectors(3000, dim=128, clusters=30)
    assert x.shape == (3000, 128) and (x >= 0).all() and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    uniform = np.abs(np.random.default_rng(0).standard_normal((3000, 128)))
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    # clustered: a point's nearest neighbour is far closer than in uniform data of the same shape
    nn = np.sort(x[:100] @ x[100:].T, axis=1)[:, -1].mean()
    nn_uniform = np.sort(uniform[:100] @ uniform[100:].T, axis=1)[:, -1].mean()
    assert nn > nn_uniform + 0.1


def test_exact_search_matches_full_sort():
    x = run.clustered_vectors(500, dim=64, clusters=10)
    q = run.clustered_vectors(20, dim=64, clusters=10, seed=1)
    ids = seed_way.exact_search(x, q, 10)
    full = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(ids, full)


def test_best_ngt_setting_is_the_fastest_that_reaches_the_recall():
    search = {
        "ngt": [
            {"epsilon": 0.0, "queries_per_second": 900, "recall_at_10": 0.90},
            {"epsilon": 0.1, "queries_per_second": 500, "recall_at_10": 0.96},
            {"epsilon": 0.2, "queries_per_second": 300, "recall_at_10": 0.99},
        ]
    }
    assert run.best_ngt(search)["epsilon"] == 0.1
    assert run.best_ngt({"ngt": search["ngt"][:1]}) is None


def test_quick_bench_runs_every_part(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    row = results["train"]["64"]
    for key in ("seed", "project_blocks", "project_chunk0", "project_chunk16"):
        assert row[key]["images_per_second"] > 0 and row[key]["images"] > 0
    # the seed's loop and the project's triplet batches forward 3 images per anchor, blocks forward 1
    for key in ("seed", "project_chunk0", "project_chunk16"):
        assert row[key]["images_per_second"] == pytest.approx(3 * row[key]["anchors_per_second"])
    assert row["project_blocks"]["images_per_second"] == pytest.approx(row["project_blocks"]["anchors_per_second"])
    assert row["ratio"] == max(row["ratio_blocks"], row["ratio_chunk0"], row["ratio_chunk16"])
    extract = results["extract"]
    assert extract["seed"]["images"] == extract["project"]["images"] == 63
    assert len(extract["rounds"]) == 1 and extract["ratio"] == extract["rounds"][0]["ratio"] > 0
    assert extract["project"]["cold_images_per_second"] > 0 and extract["ratio_cold"] > 0
    search = results["search"]["2000"]
    swept = [s["epsilon"] for s in search["ngt"]]
    assert swept == sorted({0.0, 0.05, 0.1, 0.2, config.load(ROOT / "params.yaml").index.epsilon})
    assert all(0 <= s["recall_at_10"] <= 1 for s in search["ngt"])
    assert set(results["targets"]) and all("met" in t for t in results["targets"].values())


def test_epochs_script_times_every_epoch_of_every_variant(tmp_path, tiny_params):
    out = tmp_path / "epochs.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "epochs.py"), "--device", "cpu", "--epochs", "2"]
    cmd += ["--params", str(tiny_params)]
    cmd += ["--variants", "nodet-nocudnn,ck0", "--full", "1", "--seeds", "0", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["cold_first_epoch_s"]["variant"] == "nodet-nocudnn"
    assert report["cold_first_epoch_s"]["s"] > 0
    for name in ("nodet-nocudnn", "ck0"):
        timed = report[f"epochs_{name}"]
        assert len(timed["epoch_s"]) == 2 and timed["warm_epoch_s"] == timed["epoch_s"][1] > 0
        assert timed["sum_s"] == pytest.approx(sum(timed["epoch_s"]), abs=0.01)
    # the variant that would finish --full epochs first: measured epochs, then warm ones (here --full < --epochs)
    sums = {name: report[f"epochs_{name}"]["sum_s"] for name in ("nodet-nocudnn", "ck0")}
    assert sums[report["fastest"]] == pytest.approx(min(sums.values()), abs=0.01)
    full = report["full_seed0"]
    assert full["variant"] == report["fastest"] and 0 <= full["composition_top1"] <= 1 and full["train_s"] > 0
    assert full["max_later_epoch_s"] == 0.0 and full["first_epoch_s"] == full["median_epoch_s"] > 0  # one epoch


@pytest.fixture
def tiny_params(tmp_path) -> Path:
    """params.yaml with the pipeline tests' tiny synthetic set (3 persons, 32 px), for the scripts' --params."""
    import yaml

    from .test_pipeline import TINY, _merge

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)))
    return path


def test_time_to_accuracy_runs_recipes_side_by_side(tmp_path, tiny_params):
    import yaml

    # three images per pair, so that stage fuse's inner rule has one per pair to hold out
    params = yaml.safe_load(tiny_params.read_text())
    params["data"]["synthetic"]["images_per_pair"] = 3
    tiny_params.write_text(yaml.safe_dump(params))
    out = tmp_path / "tta.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--seeds", "0,1", "--scale", "0.01"]
    cmd += ["--params", str(tiny_params)]
    b8 = "b8:train.batch_size=8;train.epochs=100;features.fuse=inner"
    # c: b8's params, its final network continued from the inner network for 100 epochs (1 at --scale 0.01)
    cmd += ["--recipes", f"today,{b8},c{b8[2:]};final.start=inner;final.epochs=100", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["data"] == "synthetic" and report["recipes"]["today"]["legacy"] == 1
    assert report["recipes"]["b8"] == {"train.batch_size": 8, "train.epochs": 100, "features.fuse": "inner"}
    # --scale 0.01: 160 epochs become 2, 100 become 1; the seeds interleave the recipes
    assert [r["epochs"] for r in report["runs"]["today"]] == [2, 2] and report["runs"]["b8"][0]["epochs"] == 1
    assert [r["seed"] for r in report["runs"]["b8"]] == [0, 1]
    # today's index had params' fixed weights and no inner network; the inner rule trains one, and it is timed
    fixed = params["features"]["fuse_weight"]
    for entry in report["runs"]["today"]:
        assert entry["weights"] == {"rule": "fixed", **fixed} and entry["inner_s"] == 0
        assert entry["time_s"] == entry["train_s"]
    for entry in report["runs"]["b8"]:
        assert entry["weights"]["rule"] == "inner" and entry["inner_s"] > 0
        assert entry["time_s"] == pytest.approx(entry["train_s"] + entry["inner_s"], abs=0.11)
        assert 0 <= entry["weights"]["identity"] <= 1 and 0 <= entry["weights"]["attribute"] <= 1
    # c shares b8's inner network, seed by seed (the same weights, its time counted once in each), and continues it
    assert report["recipes"]["c"] == {**report["recipes"]["b8"], "final.start": "inner", "final.epochs": 100}
    for mine, its in zip(report["runs"]["c"], report["runs"]["b8"], strict=True):
        assert mine["inner_s"] == its["inner_s"] > 0 and mine["weights"] == its["weights"] and mine["epochs"] == 1
        assert mine["time_s"] == pytest.approx(mine["train_s"] + mine["inner_s"], abs=0.11)
    for name, row in report["summary"].items():
        assert row["seeds"] == 2 and row["train_s"]["mean"] > 0 and row["time_s"]["mean"] >= row["train_s"]["mean"]
        for key in ("indexed.composition", "indexed.transfer", "network.composition", "network.transfer"):
            assert 0 <= row[key]["mean"] <= 1 and row[key]["sd"] >= 0, (name, key)
    assert report["summary"]["today"]["time_vs_today"] == report["summary"]["today"]["train_vs_today"] == 1.0
    b8 = report["summary"]["b8"]
    assert b8["time_vs_today"] == round(b8["time_s"]["mean"] / report["summary"]["today"]["time_s"]["mean"], 3)


def test_threads_script_times_one_two_thread_process_against_two_single_thread_ones(tmp_path, tiny_params):
    out = tmp_path / "threads.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "threads.py"), "--epochs", "2", "--params", str(tiny_params)]
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    one, two = report["one_process_2_threads"], report["two_processes_1_thread"]
    assert len(one["epoch_s"]) == 1 and len(two["epoch_s"]) == 2  # processes
    assert all(len(run) == 2 and min(run) > 0 for run in one["epoch_s"] + two["epoch_s"])  # epochs
    assert one["median_epoch_s"] == one["epoch_s"][0][1]  # the epochs after the first
    assert two["median_epoch_s"] == pytest.approx(statistics.median([run[1] for run in two["epoch_s"]]), abs=0.001)
    ratio = two["median_epoch_s"] / (2 * one["median_epoch_s"])
    assert report["two_networks_side_by_side_vs_in_a_row"] == pytest.approx(ratio, abs=0.001)


def test_time_to_accuracy_refuses_an_unknown_parameter(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--recipes", "x:train.epoch=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "unknown parameter 'train.epoch'" in proc.stderr
    # continuing the inner network (final.start: inner, the default) needs one: not with fixed weights
    cmd[-1] = "x:features.fuse=fixed"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "'final.start' is inner" in proc.stderr and "(recipe x)" in proc.stderr


def test_profile_splits_the_step_by_operator_kind(tmp_path, tiny_params):
    out = tmp_path / "profile.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "profile_step.py"), "--epochs", "1", "--out", str(out)]
    cmd += ["--params", str(tiny_params)]
    proc = subprocess.run([*cmd, "--set", "train.threads=0"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kinds = json.loads(out.read_text())["kinds"]
    assert sum(k["share"] for k in kinds.values()) == pytest.approx(1.0, abs=0.01)
    # MobileNetV2 has 17 depthwise 3x3 and 35 pointwise 1x1 convolutions, each run forward and backward
    for kind in ("depthwise 3x3", "pointwise 1x1", "full 3x3"):
        assert kinds[f"conv {kind} forward"]["s"] > 0 and kinds[f"conv {kind} backward"]["s"] > 0
    assert kinds["batchnorm"]["s"] > 0 and kinds["optimizer"]["s"] > 0


def test_precision_times_every_convolution_of_an_epoch_and_both_trainings(tmp_path, tiny_params):
    import torch

    from facearith.training import network

    out = tmp_path / "precision.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "precision.py"), "--epochs", "2", "--rounds", "2"]
    proc = subprocess.run([*cmd, "--reps", "1", "--params", str(tiny_params), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    # each step forwards the batch through every convolution once: the epoch's calls are a multiple of them
    p = config.load(tiny_params)
    persons = p.data.synthetic.persons
    net = network.build(p.model, persons * 7, persons, 7)  # unseeded: only its layers are counted
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert convs > 50 and report["conv_calls_per_epoch"] % convs == 0 and report["conv_shapes"] >= convs // 2
    assert set(report["conv_epoch_s"]) == {"fp32", "onednn_bf16", "bf16"}
    assert all(s > 0 for s in report["conv_epoch_s"].values())
    # the two rounds of a mode train the same network: deterministic, and the mode is undone after each run
    for mode, runs in report["training"].items():
        assert len(runs) == 2 and runs[0]["last_loss"] == runs[1]["last_loss"], mode
    assert report["training_speedup_vs_fp32"]["fp32"] == 1.0


def test_device_script_runs_on_the_cpu_in_small(tmp_path, tiny_params):
    """benchmarks/device.sh is what a session with a lent GPU runs in its few minutes: it must not fail there
    on wiring. On the CPU with tiny settings (the synthetic set, no archive), every report it promises appears,
    gpu.py's among them."""
    env = {**os.environ, "DEVICE": "cpu", "GPU_ARGS": "--epochs 1 --size 64 --seed-epochs 1", "SCALE": "0.01"}
    env |= {"SEEDS": "0", "PYTHON": sys.executable, "PARAMS": str(tiny_params)}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device.sh"), "", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "torch" in (tmp_path / "card.txt").read_text()
    gpu = json.loads((tmp_path / "gpu.json").read_text())  # gpu.py: the seed's configuration, 1 epoch at 64 px
    assert gpu["device"] == "cpu" and gpu["train_images_per_second"] == gpu["train_anchors_per_second"] > 0
    assert gpu["total_s"] >= gpu["train_s"] > 0
    assert len(gpu["train_epoch_s"]) == 1 and gpu["train_warm_images_per_second"] > 0
    run = json.loads((tmp_path / "time_to_accuracy.json").read_text())["runs"]["defaults"][0]
    assert run["epochs"] >= 1 and run["max_later_epoch_s"] >= 0 and run["median_epoch_s"] > 0
