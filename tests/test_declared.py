"""dvc.yaml must declare exactly what each stage reads: DVC's "up to date" is only as true as those lists.

Every stage runs on a tiny configuration under a tracer that records each params.yaml key the stage reads
(attribute reads on the typed settings, after loading) and each project module it imports; the test fails
when a stage reads a key or imports a module its dvc.yaml entry does not declare, or declares one it never uses.
"""

import copy
import json
import re
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT, stage_cmd
from .test_pipeline import TINY, _merge

STAGES = ["data", "prepare", "linear", "fuse", "train", "features", "index", "evaluate"]

TRACER = r"""
import dataclasses, json, os, runpy, sys, typing
trace_path, script, *argv = sys.argv[1:]
from facearith import config

state = {"loaded": {}, "read": set()}  # loaded: id of each settings object from params.yaml -> its key prefix


def instrument(cls):
    names = {f.name for f in dataclasses.fields(cls)}
    for hint in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(hint):
            instrument(hint)
    original = cls.__getattribute__

    def traced(self, name, _original=original, _names=names):
        value = _original(self, name)
        prefix = state["loaded"].get(id(self))
        if prefix is not None and name in _names and not dataclasses.is_dataclass(value):
            state["read"].add(prefix + name)
        return value

    cls.__getattribute__ = traced


def register(settings, prefix):
    state["loaded"][id(settings)] = prefix
    for f in dataclasses.fields(settings):
        value = object.__getattribute__(settings, f.name)
        if dataclasses.is_dataclass(value):
            register(value, f"{prefix}{f.name}.")


instrument(config.Params)
load = config.load
kept = []


def traced_load(*args, **kwargs):
    # validation reads every key; what counts is what the stage reads from the loaded settings afterwards
    # (not, say, model settings rebuilt from a saved model file)
    params = load(*args, **kwargs)
    kept.append(params)  # alive, so that no other object takes its id
    register(params, "")
    return params


config.load = traced_load
sys.argv = [script, *argv]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python script` does
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
finally:
    modules = sorted(m for m in sys.modules if m == "torch" or m.startswith("facearith."))
    with open(trace_path, "w") as f:
        json.dump({"params": sorted(state["read"]), "modules": modules, "exit": code}, f)
"""


def undeclared(stage: str, trace: dict, spec: dict) -> dict[str, list[str]]:
    """What the stage read but does not declare, and what it declares but never read."""
    entry = spec["stages"][stage]
    declared_params = entry.get("params", [])
    deps = [d for d in entry.get("deps", []) if d.startswith("src/facearith/")]
    # a package's __init__ holds only a docstring (the top one the version): the modules are what a stage runs
    paths = [f"src/{m.replace('.', '/')}" for m in trace["modules"] if m.startswith("facearith.")]
    used_modules = [f"{p}.py" for p in paths if not (ROOT / p).is_dir()]
    return {
        "params read, not declared": [
            k for k in trace["params"] if not any(k == d or k.startswith(d + ".") for d in declared_params)
        ],
        "params declared, never read": [
            d for d in declared_params if not any(k == d or k.startswith(d + ".") for k in trace["params"])
        ],
        "modules imported, not in deps": sorted(set(used_modules) - set(deps)),
        "modules in deps, never imported": sorted(set(deps) - set(used_modules)),
    }


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    root = tmp_path_factory.mktemp("declared")
    # three images per pair, so that stage fuse runs its rule (the default, features.fuse: inner), which reads more
    inner = {"data": {"synthetic": {"images_per_pair": 3}}, "features": {"fuse": "inner"}}
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), _merge(TINY, inner))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = {}
    for stage in STAGES:
        trace = root / f"{stage}.trace.json"
        cmd = stage_cmd(stage)
        proc = subprocess.run(
            [sys.executable, "-c", TRACER, str(trace), *cmd[1:]], cwd=root, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr
        out[stage] = json.loads(trace.read_text())
        assert out[stage]["exit"] == 0, proc.stderr
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_reads_exactly_what_dvc_yaml_declares(traces, stage):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert undeclared(stage, traces[stage], spec) == {
        "params read, not declared": [],
        "params declared, never read": [],
        "modules imported, not in deps": [],
        "modules in deps, never imported": [],
    }


def test_the_check_finds_an_undeclared_param_and_module(traces):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    broken = copy.deepcopy(spec)
    broken["stages"]["evaluate"]["params"].remove("train.threads")
    broken["stages"]["evaluate"]["deps"].remove("src/facearith/search/ngt.py")
    found = undeclared("evaluate", traces["evaluate"], broken)
    assert found["params read, not declared"] == ["train.threads"]
    assert found["modules imported, not in deps"] == ["src/facearith/search/ngt.py"]


def test_stages_without_a_network_import_no_torch(traces):
    for stage in ("data", "prepare", "index"):
        assert "torch" not in traces[stage]["modules"], stage
    assert "torch" in traces["train"]["modules"]  # the tracer does see it where it is used


def test_the_runner_and_the_console_command_import_no_torch():
    code = "import sys, facearith.runner, facearith.cli, facearith.config; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_each_stage_script_is_thin_and_tests_do_not_import_stages():
    for script in (ROOT / "stages").glob("*.py"):
        assert len(script.read_text().splitlines()) <= 40, script.name
    stage_import = re.compile(r"^\s*(from stages\b|import stages\b|sys\.path\.insert\(.*stages)", re.M)
    for test in (ROOT / "tests").glob("*.py"):
        assert not stage_import.search(test.read_text()), test.name
