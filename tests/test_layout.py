"""The library's shape: no import cycle, modules a reader can hold in mind, the experiment tooling apart from
what the stages run, and one registry of protocols that the metrics, the report and `make compare` follow."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facearith.evaluation import registry, run
from facearith.evaluation.protocols import composition_records
from facearith.experiments import tables
from facearith.search.exact import ExactSearcher

from .conftest import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "facearith"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports, at the top or inside a function (a
    package's __init__ counts as what it imports, which here is nothing)."""
    modules = {_module_name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from a.b import c`: the module a.b.c when there is one, else a.b
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in modules else node.module for t in targets]
            else:
                continue
            found |= {t for t in targets if t in modules and not modules[t].name == "__init__.py"}
        graph[name] = found - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`, each as the path that closes it (depth first)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_within_the_package():
    graph = import_graph()
    assert len(graph) > 30 and "facearith.search.ngt" in graph["facearith.search.backends"]
    assert cycles(graph) == []
    # the check finds one: a library module importing back a module that imports it
    planted = {**graph, "facearith.config": graph["facearith.config"] | {"facearith.training.network"}}
    assert ["facearith.config", "facearith.training.network", "facearith.config"] in cycles(planted)


def test_no_module_over_300_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > 300} == {}


def test_the_stages_run_the_library_not_the_experiment_tooling():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    deps = [d for stage in spec["stages"].values() for d in stage.get("deps", [])]
    assert any(d.startswith("src/facearith/training/") for d in deps)
    assert not [d for d in deps if d.startswith("src/facearith/experiments/")]


def _toy(scene: registry.Scene) -> pd.DataFrame:
    """A protocol the project does not have: composition of the training pairs, searched among the held-out
    images only (label vectors from the training images)."""
    return composition_records(scene.heldout, scene.heldout.askable_pairs(), scene.depth)


def _faces(noise: float) -> tuple[np.ndarray, pd.DataFrame]:
    """3 persons x 3 expressions x 2 images, features normalise(person + expression + noise); one image per pair
    trains."""
    rng = np.random.default_rng(0)
    person, expression = rng.random((3, 12)), rng.random((3, 12))
    rows = [(f"p{i}", f"e{j}", k == 0) for i in range(3) for j in range(3) for k in range(2)]
    table = pd.DataFrame(rows, columns=["identity", "attribute", "selected"])
    feats = np.stack([person[int(i[1])] + expression[int(a[1])] for i, a, _ in rows])
    feats = feats + noise * rng.normal(size=feats.shape)
    return (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32), table


def test_a_protocol_is_one_registry_entry_in_the_metrics_the_report_and_make_compare(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.PROTOCOLS, "toy.composition", registry.Protocol("toy: held-out composition", _toy))
    measured = {}
    for noise in (0.0, 0.4):
        feats, table = _faces(noise)
        metrics = run.evaluate_all(feats, table, ExactSearcher(feats), {"network": feats}, (1, 5), 5, 0).metrics
        assert metrics["toy"]["composition"]["queries"] == 9
        assert metrics["network"]["toy"]["composition"]["top1"] is not None
        measured[noise] = metrics
    assert measured[0.0]["toy"]["composition"]["top1"] != measured[0.4]["toy"]["composition"]["top1"]
    # the report's table of a run has its row
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    text = tables.results_table(measured[0.0], {"epochs": 1, "seconds": 1, "device": "cpu"}, params)
    assert "| toy: held-out composition | 9 |" in text
    # make compare shows its column when it differs between the runs compared (here HEAD and the workspace)
    for name in ("Makefile", "pyproject.toml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    os.utime(tmp_path / "pyproject.toml", (0, 0))  # older than the environment: make does not reinstall
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "dvc.yaml").write_text("metrics:\n  - metrics/eval.json\n")
    (tmp_path / "metrics").mkdir()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True)
    (tmp_path / "metrics/eval.json").write_text(json.dumps(measured[0.0]))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=test"]
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "run"], cwd=tmp_path, check=True)
    (tmp_path / "metrics/eval.json").write_text(json.dumps(measured[0.4]))
    proc = subprocess.run(["make", "-s", "compare"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    assert "toy.composition.top1" in header
    assert "toy.composition.top5" not in header  # what compare leaves out, it leaves out of every protocol
