"""The README as a newcomer uses it: its commands run in order, `make repro` then `make test` included; its table is
generated; the docs of every parameter. Tests marked `checkout` read the checkout's own docs, params and grid:
the README's `make test` step of `tools/docs_check.py --tiny` runs them after a fresh copy's own `make repro`."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from facearith.experiments import tables

from .conftest import ROOT


def test_every_readme_command_runs_in_order_in_a_fresh_copy():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools/docs_check.py"), "--tiny"], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    # "bg": a command ending in & (the service), running until the check ended
    ran = [line.split("  (")[0] for line in lines if line.startswith(("ok ", "bg "))]
    skipped = [line for line in lines if line.startswith("skip ")]
    readme = (ROOT / "README.md").read_text()
    blocks = "".join(re.findall(r"^```bash\n(.*?)^```", readme, flags=re.M | re.S))
    # every command line of the README is accounted for; only those that need a JAFFE copy may be skipped
    expected = [ln for ln in blocks.splitlines() if ln.strip() and not ln.startswith((" ", "#"))]
    assert len(ran) + len(skipped) == len(expected)
    assert all("no JAFFE copy" in s for s in skipped)
    # a newcomer's sequence: the tests run after their own `make repro`, which rewrote metrics/ and dvc.lock
    assert ran[:2] == ["ok    make repro", "ok    make test"]
    assert any("dvc exp run --temp -n mine -S data.source=folder" in line for line in ran)  # the folder example
    assert "bg      facearith serve &" in ran  # and the curl lines after it asked it (--fail-with-body)
    assert lines[-1] == "docs-check: all commands ran"


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits as one until its new parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_background_command_ends_when_the_check_is_killed_outright():
    """A check killed by SIGKILL (a timeout) runs no `finally`: its `facearith serve &` must not outlive it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", (
            "import subprocess, sys, time; sys.path.insert(0, sys.argv[1]); import docs_check\n"
            "child = subprocess.Popen(['sleep', '600'], start_new_session=True,\n"
            "                         preexec_fn=docs_check.die_with_parent)\n"
            "print(child.pid, flush=True); time.sleep(600)"
        ), str(ROOT / "tools")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    child = int(parent.stdout.readline())
    assert _running(child)
    parent.kill()
    parent.wait(timeout=30)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)


@pytest.mark.checkout
def test_the_readme_is_one_page_with_the_quick_start_and_workflow_first():
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 160
    assert len(readme[: readme.index("## Data")]) <= 85


@pytest.mark.checkout
def test_the_generated_tables_are_current():
    """From results/grid.json, which neither a user's own `make repro` nor their baseline commit rewrites."""
    proc = subprocess.run(
        [sys.executable, "-m", "facearith.experiments.report", "--root", str(ROOT), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- headline:begin -->") == 1
    assert "<!-- grid:begin -->" in (ROOT / "docs/results.md").read_text()


def _keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return out


@pytest.mark.checkout
def test_params_yaml_says_what_each_key_is_in_one_short_comment_and_the_docs_say_why():
    text = (ROOT / "params.yaml").read_text()
    keys = _keys(yaml.safe_load(text))
    # a comment is what follows a '#' outside quotes (the values here hold none)
    comments = [line[line.index("#") :] for line in text.splitlines() if "#" in line]
    assert len(comments) <= len(keys), f"{len(comments)} comments for {len(keys)} keys"
    assert all(len(c) < 100 for c in comments), [c for c in comments if len(c) >= 100]
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \|", (ROOT / "docs/pipeline.md").read_text(), flags=re.M)
    assert sorted(rows) == sorted(keys), set(rows) ^ set(keys)  # one row per key, none for a key that is gone


def test_results_table_from_known_metrics():
    ev = {
        "composition": {"top1": 0.5, "top5": 0.75, "queries": 4},
        "transfer": {"top1": 0.25, "top5": 1.0, "queries": 8},
        "baseline_pixels": {"composition": {"top1": 0.125, "top5": 0.5, "queries": 4}},
        "composition_seed": {"accuracy": 1.0, "queries": 10},
    }
    table = tables.results_table(ev, {"epochs": 3, "seconds": 1.5, "device": "cpu"}, {"data": {"source": "jaffe"}})
    lines = table.splitlines()
    assert lines[0] == "Data `jaffe`, 3 epochs in 1.5 s on cpu; indexed: the network's features."
    # only the systems measured get a column: here the network and raw pixels
    assert lines[2] == "| protocol | queries | network top-1 (top-5) | raw pixels top-1 (top-5) |"
    assert lines[4] == "| composition (trained images) | 4 | 0.500 (0.750) | 0.125 (0.500) |"
    assert lines[5] == "| transfer (trained images) | 8 | 0.250 (1.000) | - (-) |"
    assert len(lines) == 8 and lines[-1] == "The seed's protocol (10 random pairs): 1.000."  # no held-out rows
    readme = "intro\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nrest\n"
    new = tables.render(readme, "NEW", tables.HEADLINE_BEGIN, tables.HEADLINE_END)
    assert new == "intro\n<!-- headline:begin -->\nNEW\n<!-- headline:end -->\nrest\n"
    with pytest.raises(ValueError, match="no '<!-- grid:begin -->'"):
        tables.render(readme, "NEW", tables.GRID_BEGIN, tables.GRID_END)


def test_results_table_puts_the_indexed_system_first_and_the_network_alone_beside_it():
    """Since the index holds the network beside PCA + LDA, the top level of metrics/eval.json is that fusion and the
    network alone is `network.*`; with features.fuse_weight 1 the top level is the network and has one column."""
    ev = {
        "composition": {"top1": 0.75, "top5": 1.0, "queries": 4},
        "network": {"composition": {"top1": 0.5, "top5": 0.75, "queries": 4}},
        "baseline_linear": {"composition": {"top1": 0.25, "top5": 0.5, "queries": 4}},
    }
    params = {"data": {"source": "jaffe"}, "features": {"fuse_weight": 0.2}}
    lines = tables.results_table(ev, {"epochs": 3, "seconds": 1.5, "device": "cpu"}, params).splitlines()
    assert lines[0].endswith("indexed: network + PCA + LDA (features.fuse_weight 0.2).")  # one weight (runs before)
    params["features"]["fuse_weight"] = {"identity": 0.3, "attribute": 0.1}  # per axis (since 2026-11-30)
    per_axis = tables.results_table(ev, {"epochs": 3, "seconds": 1.5, "device": "cpu"}, params).splitlines()
    assert per_axis[0].endswith("indexed: network + PCA + LDA (features.fuse_weight identity 0.3, attribute 0.1).")
    assert per_axis[1:] == lines[1:]
    # chosen by stage fuse (metrics/fuse.json): params' fixed weights no longer say what was indexed
    fuse = {"identity": 0.6, "attribute": 0.4, "rule": "inner"}
    inner = tables.results_table(ev, {"epochs": 3, "seconds": 1.5, "device": "cpu"}, params, fuse=fuse).splitlines()
    assert inner[0].endswith(
        "network + PCA + LDA, weights chosen on the training images (identity 0.6, attribute 0.4)."
    )
    assert lines[2] == (
        "| protocol | queries | network + PCA + LDA top-1 (top-5) | network top-1 (top-5) | PCA + LDA top-1 (top-5) |"
    )
    assert lines[4] == "| composition (trained images) | 4 | 0.750 (1.000) | 0.500 (0.750) | 0.250 (0.500) |"
    ev["network"] = ev["composition"] and {"composition": ev["composition"]}
    params["features"]["fuse_weight"] = {"identity": 1, "attribute": 1}
    lines = tables.results_table(ev, {"epochs": 3, "seconds": 1.5, "device": "cpu"}, params).splitlines()
    assert lines[0].endswith("indexed: network.")
    assert lines[2] == "| protocol | queries | network top-1 (top-5) | PCA + LDA top-1 (top-5) |"
    assert lines[4] == "| composition (trained images) | 4 | 0.750 (1.000) | 0.250 (0.500) |"
