"""The experiment grid: names, queue commands, collecting `dvc exp show --json`, mean +- sd, the README tables."""

import json
import math

import pytest

from facearith import grid, report


def _record(name, seed, comp, rev="abc", error=None, ts="2026-11-27T10:00:00"):
    return {
        "rev": rev,
        "name": name,
        "error": error,
        "data": {
            "timestamp": ts,
            "params": {
                "params.yaml": {
                    "data": {
                        "data": {"source": "jaffe"},
                        "prepare": {"split": "images"},
                        "train": {"seed": seed, "epochs": 80, "image_size": 96},
                    }
                }
            },
            "metrics": {
                "metrics/train.json": {"data": {"seconds": 50.0 + seed}},
                "metrics/eval.json": {
                    "data": {
                        "heldout_images": {"composition": {"top1": comp, "top5": 1.0, "queries": 70}},
                        "baseline_linear": {"heldout_images": {"composition": {"top1": 0.9, "top5": 1.0}}},
                    }
                },
            },
        },
    }


def test_names_and_queue_commands():
    assert grid.experiment_names("jaffe", "train.seed", ["0", "1"]) == ["jaffe-seed0", "jaffe-seed1"]
    cmds = grid.queue_commands("jaffe-pairs", ["data.source=jaffe"], "prepare.fold", ["0", "4"])
    assert cmds[1] == [
        "dvc",
        "exp",
        "run",
        "--queue",
        "-f",
        "-n",
        "jaffe-pairs-fold4",
        "-S",
        "data.source=jaffe",
        "-S",
        "prepare.fold=4",
    ]
    with pytest.raises(ValueError, match="train.epochs"):
        grid.experiment_names("x", "train.epochs", ["1"])


def test_collect_keeps_the_grid_newest_first_and_skips_others():
    shown = [
        {"rev": "workspace", "name": None, "data": _record("", 0, 0.1)["data"], "error": None, "experiments": None},
        {
            "rev": "f00",
            "name": "main",
            "data": _record("", 0, 0.1)["data"],
            "error": None,
            "experiments": [
                {"revs": [_record("jaffe-seed1", 1, 0.8)]},
                {"revs": [_record("jaffe-seed0", 0, 0.6, ts="2026-11-27T09:00:00")]},
                {"revs": [_record("jaffe-seed0", 0, 0.7, ts="2026-11-27T11:00:00")]},  # the newer run wins
                {"revs": [_record("jaffe-seed2", 2, 0.9, error={"msg": "failed"})]},  # failed: left out
                {"revs": [_record("tried-something", 0, 0.5)]},  # not a grid name
                {"revs": [_record("jaffe-pairs-fold3", 0, 0.4)], "executor": {"state": "success"}},
                # still in the queue: its record carries the baseline's metrics, not its own
                {"revs": [_record("jaffe-pairs-fold4", 0, 0.1)], "executor": {"state": "running"}},
                {"revs": [_record("jaffe-pairs-fold5", 0, 0.1)], "executor": {"state": "queued"}},
                {"revs": [_record("jaffe-pairs-fold6", 0, 0.1)], "executor": {"state": "failed"}},
            ],
        },
    ]
    runs = grid.collect(shown, machine="test CPU")
    assert [(r["group"], r["vary"], r["value"]) for r in runs] == [
        ("jaffe", "seed", 0),
        ("jaffe", "seed", 1),
        ("jaffe-pairs", "fold", 3),
    ]
    assert runs[0]["eval"]["heldout_images"]["composition"]["top1"] == 0.7
    assert runs[0]["machine"] == "test CPU" and runs[0]["params"]["train"]["seed"] == 0


def test_collect_keeps_the_runs_already_collected_unless_a_newer_run_replaces_one():
    # a fresh clone has none of the earlier experiments' refs: what the committed file holds must stay
    earlier = grid.collect(
        [{"experiments": [{"revs": [_record("old-seed0", 0, 0.5), _record("jaffe-seed0", 0, 0.6)]}]}]
    )
    newer = _record("jaffe-seed0", 0, 0.8, ts="2099-01-01T00:00:00")
    runs = grid.collect([{"experiments": [{"revs": [newer, _record("jaffe-seed1", 1, 0.7)]}]}], "here", earlier)
    assert [r["name"] for r in runs] == ["jaffe-seed0", "jaffe-seed1", "old-seed0"]
    assert runs[0]["eval"]["heldout_images"]["composition"]["top1"] == 0.8 and runs[0]["machine"] == "here"
    assert runs[2] == earlier[1]
    older = _record("jaffe-seed1", 1, 0.1, ts="1999-01-01T00:00:00")
    assert grid.collect([{"experiments": [{"revs": [older]}]}], "", runs) == runs  # an older run does not


def test_mean_sd():
    m, sd, n = grid.mean_sd([0.6, 0.8, None])
    assert (round(m, 6), round(sd, 6), n) == (0.7, round(math.sqrt(0.02), 6), 2)
    assert grid.mean_sd([0.5]) == (0.5, 0.0, 1) and grid.mean_sd([None]) is None


def test_grid_tables_render_mean_and_sd_per_group(tmp_path):
    runs = grid.collect([{"experiments": [{"revs": [_record("jaffe-seed0", 0, 0.6), _record("jaffe-seed1", 1, 0.8)]}]}])
    text = report.grid_tables(runs)
    assert "**jaffe**: data `jaffe`, split `images`, 80 epochs at 96 px, 2 runs (seed 0, 1)" in text
    row = next(line for line in text.splitlines() if line.startswith("| composition, held-out images: top-1"))
    assert "0.700 +- 0.141" in row and "0.900 +- 0.000" in row  # network, then PCA + LDA
    assert "training 50 +- 1 s per run" in text and "70 held-out composition queries per run" in text
    assert "expression recognised" not in text  # a row no run of the group measured is left out, not all '-'
    assert "network + PCA + LDA" not in text  # so is a system no run measured (runs before it existed)
    runs[0]["params"]["prepare"]["seed"] = 1  # another draw of the held-out images is named
    assert "split `images` (prepare.seed 1), 80 epochs" in report.grid_tables(runs)
    runs[0]["params"]["prepare"]["seed"] = 0
    assert report.grid_tables([]).startswith("No experiment grid")
    # a run of the present layout: the top level is what was indexed (the fusion), the network alone under network
    new = _record("jaffe-seed2", 2, 0.95)
    metrics = new["data"]["metrics"]["metrics/eval.json"]["data"]
    metrics["network"] = {"heldout_images": {"composition": {"top1": 0.8}}}
    new["data"]["params"]["params.yaml"]["data"]["features"] = {"fuse_weight": 0.2}
    text = report.grid_tables(grid.collect([{"experiments": [{"revs": [new]}]}], earlier=runs))
    assert "indexed: network + PCA + LDA (features.fuse_weight 0.2)" not in text  # the group's first run: earlier
    assert "| protocol (mean +- sd) | network + PCA + LDA | network | PCA + LDA |" in text
    row = next(line for line in text.splitlines() if line.startswith("| composition, held-out images: top-1"))
    # the fusion is measured by the new run only; the network by all three (0.6, 0.8 at the old runs' top level)
    assert row == "| composition, held-out images: top-1 | 0.950 +- 0.000 | 0.733 +- 0.115 | 0.900 +- 0.000 |"
    # the README's grid block is rewritten from results/grid.json, and --check notices when it is stale
    (tmp_path / "results").mkdir()
    (tmp_path / "results/grid.json").write_text(json.dumps({"runs": runs}))
    for name in ("metrics/eval.json", "metrics/train.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(json.dumps({}))
    (tmp_path / "params.yaml").write_text("data: {source: synthetic}\n")
    readme = "# x\n<!-- results:begin -->\n<!-- results:end -->\n<!-- grid:begin -->\nold\n<!-- grid:end -->\n"
    (tmp_path / "README.md").write_text(readme)
    assert report.main(["--root", str(tmp_path), "--check"]) == 1
    assert report.main(["--root", str(tmp_path)]) == 0
    assert "0.700 +- 0.141" in (tmp_path / "README.md").read_text()
    assert report.main(["--root", str(tmp_path), "--check"]) == 0


def test_queue_tasks_read_dvc_queue_status():
    text = (
        "Task     Name          Created    Status\n"
        "0dc84ad  jaffe-seed1   01:28 AM   Running\n"
        "368f316  jaffe-seed2   01:28 AM   Queued\n"
        "d818dc1  jaffe-seed0   12:31 AM   Success\n"
        "4381fdd  jaffe-seed1   12:31 AM   Success\n"
        "\nWorker status: 1 active, 0 idle\n"
    )
    rows = grid.queue_tasks(text)
    assert rows == [
        ("0dc84ad", "jaffe-seed1", "Running"),
        ("368f316", "jaffe-seed2", "Queued"),
        ("d818dc1", "jaffe-seed0", "Success"),
        ("4381fdd", "jaffe-seed1", "Success"),
    ]
    # an earlier run of the same name (4381fdd) must not pass for the one still running
    earlier = {"d818dc1", "4381fdd"}
    assert {n: s for t, n, s in rows if t not in earlier} == {"jaffe-seed1": "Running", "jaffe-seed2": "Queued"}
    assert grid.queue_workers(text) == 1 and grid.queue_workers("no such line") is None
    assert grid.queue_workers(text.replace("1 active, 0 idle", "0 active, 2 idle")) == 2


def test_a_queue_left_without_a_worker_is_noticed():
    assert grid.stalled({"jaffe-seed1": "Success", "jaffe-seed2": "Queued"}, 0)
    assert not grid.stalled({"jaffe-seed1": "Running", "jaffe-seed2": "Queued"}, 0)  # a worker is on it
    assert not grid.stalled({"jaffe-seed1": "Success", "jaffe-seed2": "Queued"}, 1)
    assert not grid.stalled({"jaffe-seed1": "Success", "jaffe-seed2": "Failed"}, 0)  # nothing left to run
    assert not grid.stalled({"jaffe-seed2": "Queued"}, None)  # status said nothing of workers: no guess


def test_a_groups_heading_names_its_heads_learning_rate_averaged_epochs_and_smoothing():
    params = {"train": {"epochs": 160, "image_size": 96, "lr": 0.001, "schedule": "constant", "swa_from": 0.5}}
    assert report._recipe(params) == "160 epochs at 96 px, lr 0.001 constant, SWA over epochs 81-160"
    params["train"]["swa_from"] = 0.0
    assert report._recipe(params) == "160 epochs at 96 px, lr 0.001 constant"
    # the width of the per-axis heads, where there are heads
    params["model"] = {"embedding": "split", "dim": 128}
    assert report._recipe(params) == "heads of 128, 160 epochs at 96 px, lr 0.001 constant"
    params["model"]["embedding"] = "seed"
    assert report._recipe(params) == "160 epochs at 96 px, lr 0.001 constant"
    # softened classifier targets, where they are (0 and runs from before the key read the same: hard targets)
    params["train"]["label_smoothing"] = 0.1
    assert report._recipe(params) == "160 epochs at 96 px, lr 0.001 constant, label smoothing 0.1"
    params["train"]["label_smoothing"] = 0.0
    assert report._recipe(params) == "160 epochs at 96 px, lr 0.001 constant"
    # an ensemble: how many networks, each trained as the rest says
    params["model"] = {"embedding": "split", "dim": 64, "members": 2}
    expected = "an ensemble of 2 networks (each: heads of 64, 160 epochs at 96 px, lr 0.001 constant)"
    assert report._recipe(params) == expected
    params["model"]["members"] = 1
    assert report._recipe(params) == "heads of 64, 160 epochs at 96 px, lr 0.001 constant"
    # runs of commits before these keys existed: what they have
    assert report._recipe({"train": {"epochs": 80, "image_size": 64}}) == "80 epochs at 64 px"
