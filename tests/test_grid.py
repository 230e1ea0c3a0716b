"""The experiment grid: names, queue commands, collecting `dvc exp show --json`, mean +- sd, the generated tables."""

import itertools
import json
import math
import os
import re
import shutil
import subprocess

import pytest

from facearith.experiments import grid, report, tables

from .conftest import ROOT


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
    text = tables.grid_tables(runs)
    assert "**jaffe**: data `jaffe`, split `images`, 80 epochs at 96 px, 2 runs (seed 0, 1)" in text
    row = next(line for line in text.splitlines() if line.startswith("| composition, held-out images: top-1"))
    assert "0.700 +- 0.141" in row and "0.900 +- 0.000" in row  # network, then PCA + LDA
    assert "training 50 +- 1 s per run" in text and "70 held-out composition queries per run" in text
    assert "expression recognised" not in text  # a row no run of the group measured is left out, not all '-'
    assert "network + PCA + LDA" not in text  # so is a system no run measured (runs before it existed)
    runs[0]["params"]["prepare"]["seed"] = 1  # another draw of the held-out images is named
    assert "split `images` (prepare.seed 1), 80 epochs" in tables.grid_tables(runs)
    runs[0]["params"]["prepare"]["seed"] = 0
    assert tables.grid_tables([]).startswith("No experiment grid")
    # a run of the present layout: the top level is what was indexed (the fusion), the network alone under network
    new = _record("jaffe-seed2", 2, 0.95)
    metrics = new["data"]["metrics"]["metrics/eval.json"]["data"]
    metrics["network"] = {"heldout_images": {"composition": {"top1": 0.8}}}
    new["data"]["params"]["params.yaml"]["data"]["features"] = {"fuse_weight": 0.2}
    text = tables.grid_tables(grid.collect([{"experiments": [{"revs": [new]}]}], earlier=runs))
    assert "indexed: network + PCA + LDA (features.fuse_weight 0.2)" not in text  # the group's first run: earlier
    assert "| protocol (mean +- sd) | network + PCA + LDA | network | PCA + LDA |" in text
    row = next(line for line in text.splitlines() if line.startswith("| composition, held-out images: top-1"))
    # the fusion is measured by the new run only; the network by all three (0.6, 0.8 at the old runs' top level)
    assert row == "| composition, held-out images: top-1 | 0.950 +- 0.000 | 0.733 +- 0.115 | 0.900 +- 0.000 |"


def _git(root, *args, env=None):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=env).stdout


def _project(root, runs, grid_line="jaffe"):
    """A git repository with the generated blocks empty or old, and a grid of `runs`."""
    (root / "results").mkdir()
    (root / "results/grid.json").write_text(json.dumps({"runs": runs}))
    (root / "Makefile").write_text(f"grid:\n\tpython -m facearith.experiments.grid run {grid_line} -S x=1\n")
    (root / "README.md").write_text("# x\n<!-- headline:begin -->\n<!-- headline:end -->\n")
    (root / "docs").mkdir()
    (root / "docs/results.md").write_text("# log\n<!-- grid:begin -->\nold\n<!-- grid:end -->\n")
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "test")


def _commit(root, message):
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", message)


def test_the_generated_tables_are_written_and_checked(tmp_path):
    earlier = [_record("jaffe-seed0", 0, 0.6, ts="2026-11-27T10:00:00"), _record("jaffe-seed1", 1, 0.8)]
    gone = _record("jaffe-old-seed0", 0, 0.4, ts="2026-11-27T10:00:00")  # a group `make grid` no longer runs
    runs = grid.collect([{"experiments": [{"revs": [*earlier, gone]}]}])
    _project(tmp_path, runs)
    then = dict(os.environ, GIT_COMMITTER_DATE="2026-11-26T10:00:00", GIT_AUTHOR_DATE="2026-11-26T10:00:00")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "the code the grid ran", env=then)
    base = _git(tmp_path, "log", "-1", "--format=%h").strip()
    assert report.main(["--root", str(tmp_path), "--check"]) == 1  # the blocks are empty or old
    assert report.main(["--root", str(tmp_path)]) == 0
    readme, doc = (tmp_path / "README.md").read_text(), (tmp_path / "docs/results.md").read_text()
    assert "| JAFFE, held-out images: composition | 2 seeds | 0.700 +- 0.141 | 0.900 +- 0.000 |" in readme
    assert "synthetic" not in readme.split("headline:end")[0].split("headline:begin")[1]  # no such group ran
    assert "**jaffe**: data `jaffe`" in doc and f"run 2026-11-27, after commit {base}." in doc
    assert "**jaffe-old** (history: `make grid` no longer runs it): data" in doc
    _commit(tmp_path, "tables")
    assert report.main(["--root", str(tmp_path), "--check"]) == 0
    # a shallow clone has no history to name the commits in: the rest of the text is still checked
    shallow = tmp_path / "shallow"
    _git(tmp_path, "clone", "-q", "--depth", "1", f"file://{tmp_path}", str(shallow))
    assert report.main(["--root", str(shallow), "--check"]) == 0
    doc_path = shallow / "docs/results.md"
    doc_path.write_text(doc_path.read_text().replace("0.700 +- 0.141", "0.710 +- 0.141"))
    assert report.main(["--root", str(shallow), "--check"]) == 1
    shutil.rmtree(shallow)
    # new grid runs committed without regenerating the tables are caught, the README's and the log's
    runs.append(grid.collect([{"experiments": [{"revs": [_record("jaffe-seed2", 2, 1.0)]}]}])[0])
    (tmp_path / "results/grid.json").write_text(json.dumps({"runs": runs}))
    _commit(tmp_path, "grid runs, tables forgotten")
    assert report.main(["--root", str(tmp_path), "--check"]) == 1
    assert report.main(["--root", str(tmp_path)]) == 0 and report.main(["--root", str(tmp_path), "--check"]) == 0
    assert "| 3 seeds | 0.800 +- 0.200 |" in (tmp_path / "README.md").read_text()


def test_a_runs_own_table_is_printed_not_written(tmp_path, capsys):
    """metrics/ is each CPU's own (a user's `make repro` rewrites it), so its table goes to the terminal only."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/eval.json").write_text(json.dumps({"composition": {"top1": 0.5, "top5": 1.0, "queries": 4}}))
    (tmp_path / "metrics/train.json").write_text(json.dumps({"epochs": 3, "seconds": 1.5, "device": "cpu"}))
    (tmp_path / "params.yaml").write_text("data: {source: synthetic}\n")
    assert report.main(["--root", str(tmp_path), "--run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Data `synthetic`, 3 epochs in 1.5 s on cpu")
    assert "| composition (trained images) | 4 | 0.500 (1.000) |" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics", "params.yaml"]  # nothing written


def test_before_any_commit_the_tables_are_still_written_and_checked(tmp_path):
    _project(tmp_path, grid.collect([{"experiments": [{"revs": [_record("jaffe-seed0", 0, 0.6)]}]}]))
    assert report.main(["--root", str(tmp_path)]) == 0  # nothing committed: no commits to name
    assert "after commit" not in (tmp_path / "docs/results.md").read_text()
    assert report.main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "README.md").write_text("# no markers\n")
    (tmp_path / "docs/results.md").unlink()
    assert report.main(["--root", str(tmp_path), "--check"]) == 1  # nothing to check is an error, not a pass


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


def test_the_queue_is_looked_at_ever_less_often_up_to_half_a_minute():
    """Each look is a dvc process taking CPU from the experiment; short ones are still seen to end soon."""
    delays = grid.poll_delays()
    assert [next(delays) for _ in range(8)] == [2, 4, 8, 16, 30, 30, 30, 30]
    assert list(itertools.islice(grid.poll_delays(1, 3), 4)) == [1, 2, 3, 3]


def test_a_groups_heading_names_its_heads_learning_rate_averaged_epochs_and_smoothing():
    params = {"train": {"epochs": 160, "image_size": 96, "lr": 0.001, "schedule": "constant", "swa_from": 0.5}}
    assert tables._recipe(params) == "160 epochs at 96 px, lr 0.001 constant, SWA over epochs 81-160"
    params["train"]["swa_from"] = 0.0
    assert tables._recipe(params) == "160 epochs at 96 px, lr 0.001 constant"
    # the width of the per-axis heads, where there are heads
    params["model"] = {"embedding": "split", "dim": 128}
    assert tables._recipe(params) == "heads of 128, 160 epochs at 96 px, lr 0.001 constant"
    params["model"]["embedding"] = "seed"
    assert tables._recipe(params) == "160 epochs at 96 px, lr 0.001 constant"
    # softened classifier targets, where they are (0 and runs from before the key read the same: hard targets)
    params["train"]["label_smoothing"] = 0.1
    assert tables._recipe(params) == "160 epochs at 96 px, lr 0.001 constant, label smoothing 0.1"
    params["train"]["label_smoothing"] = 0.0
    assert tables._recipe(params) == "160 epochs at 96 px, lr 0.001 constant"
    # an ensemble: how many networks, each trained as the rest says
    params["model"] = {"embedding": "split", "dim": 64, "members": 2}
    expected = "an ensemble of 2 networks (each: heads of 64, 160 epochs at 96 px, lr 0.001 constant)"
    assert tables._recipe(params) == expected
    params["model"]["members"] = 1
    assert tables._recipe(params) == "heads of 64, 160 epochs at 96 px, lr 0.001 constant"
    # the index's network continued from stage fuse's inner network (final.start inner), or trained anew
    params["final"] = {"start": "inner", "epochs": 80}
    expected = "heads of 64, 160 epochs at 96 px, lr 0.001 constant, the index's network continued from stage fuse's"
    assert tables._recipe(params) == expected + " for 80 epochs"
    params["final"]["start"] = "scratch"
    assert tables._recipe(params) == "heads of 64, 160 epochs at 96 px, lr 0.001 constant"
    # a narrower MobileNetV2 (model.width) is named; width 1, the seed's, is not
    params["model"]["width"] = 0.5
    assert tables._recipe(params) == "MobileNetV2 of width 0.5, heads of 64, 160 epochs at 96 px, lr 0.001 constant"
    params["model"]["width"] = 1.0
    assert tables._recipe(params) == "heads of 64, 160 epochs at 96 px, lr 0.001 constant"
    # runs of commits before these keys existed: what they have
    assert tables._recipe({"train": {"epochs": 80, "image_size": 64}}) == "80 epochs at 64 px"


def test_chosen_weights_are_shown_per_run_and_their_inner_training_counted():
    """Runs whose stage fuse chose the weights (metrics/fuse.json): the headline shows each run's weights, the
    group's heading names them, and the inner network's seconds count in the training time."""
    records = []
    for seed, (w_id, w_attr) in enumerate([(0.6, 0.4), (0.7, 0.3)]):
        rec = _record(f"jaffe-seed{seed}", seed, 0.9)
        rec["data"]["metrics"]["metrics/eval.json"]["data"]["network"] = {"heldout_images": {}}
        fuse = {"identity": w_id, "attribute": w_attr, "rule": "inner", "inner": {"seconds": 20.0}}
        rec["data"]["metrics"]["metrics/fuse.json"] = {"data": fuse}
        records.append(rec)
    runs = grid.collect([{"experiments": [{"revs": records}]}])
    assert runs[0]["fuse"]["identity"] == 0.6
    headline = tables.headline_table(runs)
    assert "weights per run (identity / attribute) |" in headline.splitlines()[0]
    assert "| 0.6 / 0.4, 0.7 / 0.3 |" in headline
    assert "`jaffe` 70 +- 1 s, of which the inner network 20 s" in headline  # 50 + seed, and 20 each
    assert "weights chosen on each run's training images (identity / attribute: 0.6 / 0.4, 0.7 / 0.3)" in (
        tables.grid_tables(runs)
    )
    # a run before stage fuse: its params' fixed weights, no column
    assert "weights per run" not in tables.headline_table(
        grid.collect([{"experiments": [{"revs": [_record("jaffe-seed0", 0, 0.9)]}]}])
    )


def test_make_grid_headline_runs_the_groups_of_the_readme_headline():
    """`make grid-headline` names its groups in the Makefile; the README's table is made of tables.HEADLINE's."""
    recipe = (ROOT / "Makefile").read_text().split("\ngrid-headline:", 1)[1].split("\n\n", 1)[0].split("\ngrid:")[0]
    assert set(re.findall(r"facearith\.experiments\.grid run (\S+)", recipe)) == {g for _, g in tables.HEADLINE}
