"""Seeds (or folds) as a DVC experiment grid, and the numbers the results tables are made of.

python -m facearith.experiments.grid run NAME [-S key=value ...] [--vary train.seed=0,1,2]
    queues one `dvc exp run --queue` per value of the varied key (named NAME-seed0, NAME-seed1, ...),
    then `dvc queue start` and waits for each to finish;
python -m facearith.experiments.grid collect [--out results/grid.json]
    reads `dvc exp show --json` and keeps every experiment named like that: its group, the varied value,
    its params and metrics, and this machine's CPU (the queue runs experiments where it is started, so
    collect where you ran the grid), beside the runs the file already holds (a newer run of a name
    replaces its earlier one). DVC keeps experiments as local git refs, so this file is what is committed;
    `python -m facearith.experiments.report` renders the README's and docs/results.md's tables from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from facearith.fsutil import write_json

GRID_FILE = "results/grid.json"
# NAME-seed0, NAME-fold3: the group, and which key varied with which value
NAME = re.compile(r"^(?P<group>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*?)-(?P<key>seed|fold)(?P<value>\d+)$")
VARY_LABELS = {"train.seed": "seed", "prepare.fold": "fold"}


def experiment_names(group: str, key: str, values: Sequence[str]) -> list[str]:
    if key not in VARY_LABELS:
        raise ValueError(f"--vary: {key!r} cannot be varied here; allowed: {', '.join(VARY_LABELS)}")
    return [f"{group}-{VARY_LABELS[key]}{v}" for v in values]


def queue_commands(group: str, overrides: Sequence[str], key: str, values: Sequence[str]) -> list[list[str]]:
    """One `dvc exp run --queue` per value; -f replaces an earlier experiment of the same name."""
    sets = [a for o in overrides for a in ("-S", o)]
    return [
        ["dvc", "exp", "run", "--queue", "-f", "-n", name, *sets, "-S", f"{key}={v}"]
        for name, v in zip(experiment_names(group, key, values), values, strict=True)
    ]


def _walk(node: Any, state: str | None = None) -> list[tuple[dict, str | None]]:
    """Every experiment record in `dvc exp show --json` output, with its queue state (None outside the
    queue): a record sits in a `revs` list beside the `executor` that ran it."""
    found = []
    if isinstance(node, dict):
        if "revs" in node:
            state = (node.get("executor") or {}).get("state")
        if isinstance(node.get("data"), dict) and "metrics" in node["data"]:
            found.append((node, state))
        for value in node.values():
            found += _walk(value, state)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value, state)
    return found


def _data(files: dict[str, Any], name: str) -> dict[str, Any]:
    return ((files or {}).get(name) or {}).get("data") or {}


def collect(shown: Any, machine: str = "", earlier: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The grid's experiments from `dvc exp show --json` output, added to `earlier` runs (results/grid.json as
    committed): the newest of each name, sorted. DVC keeps experiments as local git refs, so a fresh clone
    shows none of the earlier ones, and collecting there must not drop them."""
    runs: dict[str, dict[str, Any]] = {r["name"]: r for r in earlier}
    for record, state in _walk(shown):
        name = record.get("name") or ""
        match = NAME.match(name)
        # queued and running experiments show their baseline's metrics; failed ones have none of their own
        if not match or record.get("error") or state not in (None, "success"):
            continue
        data = record["data"]
        run = {
            "name": name,
            "group": match["group"],
            "vary": match["key"],
            "value": int(match["value"]),
            "rev": record.get("rev"),
            "timestamp": data.get("timestamp"),
            "params": _data(data.get("params"), "params.yaml"),
            "train": _data(data.get("metrics"), "metrics/train.json"),
            "eval": _data(data.get("metrics"), "metrics/eval.json"),
            "fuse": _data(data.get("metrics"), "metrics/fuse.json"),  # stage fuse's weights (since 2026-12-01)
            "machine": machine,
        }
        if not run["eval"]:
            continue
        if name not in runs or (run["timestamp"] or "") > (runs[name]["timestamp"] or ""):
            runs[name] = run
    return sorted(runs.values(), key=lambda r: (r["group"], r["value"]))


def machine_description() -> str:
    """The CPU, as `lscpu` names it (model name, family, model), with its widest vector unit: kernels of
    another width round differently and train another model."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = f" {info.get('flags', '')} "
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    vector = "AVX-512" if " avx512f " in flags else "AVX2" if " avx2 " in flags else ""
    return ", ".join(x for x in (name, f"{os.cpu_count()} cores", vector) if x)


def get(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def mean_sd(values: Sequence[float | None]) -> tuple[float, float, int] | None:
    """Mean and sample standard deviation (0 for a single value) of the values present."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd, len(xs)


def groups(runs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        out.setdefault(run["group"], []).append(run)
    return out


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def queue_tasks(status_text: str) -> list[tuple[str, str, str]]:
    """(task id, experiment name, state) of each row of `dvc queue status` output. Earlier runs of the same
    name stay listed (Success, Failed), so a run is known by its task id, not its name."""
    rows = []
    for line in status_text.splitlines():
        cells = line.split()
        if len(cells) >= 4 and re.fullmatch(r"[0-9a-f]{7,}", cells[0]):
            rows.append((cells[0], cells[1], cells[-1]))
    return rows


def queue_workers(status_text: str) -> int | None:
    """How many queue workers `dvc queue status` reports (active and idle); None when it says nothing of them."""
    found = re.search(r"Worker status: (\d+) active, (\d+) idle", status_text)
    return None if found is None else int(found[1]) + int(found[2])


def stalled(states: dict[str, str], workers: int | None) -> bool:
    """Tasks wait in the queue and no worker is left to run them. DVC's worker has been seen to exit between two
    tasks of a grid, which would leave `grid run` waiting forever."""
    return workers == 0 and "Queued" in states.values() and "Running" not in states.values()


def _status() -> str:
    return subprocess.run(["dvc", "queue", "status"], check=True, capture_output=True, text=True).stdout


def poll_delays(first_s: float = 2.0, most_s: float = 30.0) -> Iterator[float]:
    """Seconds between two looks at the queue: doubling from `first_s` up to `most_s`. Each look is a `dvc queue
    status`, about 1.2 s of a CPU core on a 2-core AVX2 EPYC, taken from the experiment it waits for (every 5 s,
    as until 2026-12-08, a fifth of a core throughout a grid); a short experiment is still seen to end soon."""
    delay = first_s
    while True:
        yield delay
        delay = min(2 * delay, most_s)


def wait_for(names: Sequence[str], earlier: set[str]) -> dict[str, str]:
    """Block until the tasks of `names` that are not among the `earlier` task ids have all ended; report
    each as it ends, and return each name's final state."""
    delays = poll_delays()
    reported: set[str] = set()
    idle_polls = 0
    while True:
        text = _status()
        states = {name: state for task, name, state in queue_tasks(text) if name in names and task not in earlier}
        for name, state in states.items():
            if state not in ("Queued", "Running") and name not in reported:
                print(f"grid: {name}: {state}", flush=True)
                reported.add(name)
        if len(states) == len(names) and all(s not in ("Queued", "Running") for s in states.values()):
            return states
        # twice in a row, so that a worker between two tasks is not taken for a missing one
        idle_polls = idle_polls + 1 if stalled(states, queue_workers(text)) else 0
        if idle_polls >= 2:
            print("grid: experiments are queued but no queue worker is running; starting one", flush=True)
            _run(["dvc", "queue", "start", "--jobs", "1"])
            idle_polls = 0
        time.sleep(next(delays))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="queue and run one experiment per value of the varied key")
    run.add_argument("group", help="the experiments' common name, e.g. jaffe")
    run.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], help="key=value")
    run.add_argument("--vary", default="train.seed=0,1,2", help="key=v1,v2,... (default: train.seed=0,1,2)")
    col = sub.add_parser("collect", help="write the grid's experiments to a JSON file")
    col.add_argument("--out", default=GRID_FILE)
    args = ap.parse_args(argv)
    if args.command == "run":
        key, _, joined = args.vary.partition("=")
        values = [v for v in joined.split(",") if v]
        cmds = queue_commands(args.group, args.overrides, key, values)
        earlier = {task for task, _, _ in queue_tasks(_status())}
        for cmd in cmds:
            _run(cmd)
        _run(["dvc", "queue", "start", "--jobs", "1"])
        names = experiment_names(args.group, key, values)
        failed = [n for n, state in wait_for(names, earlier).items() if state != "Success"]
        # a worker left idle takes the next group's first task while that group's `dvc queue start` adds another:
        # two experiments at once, whose torch threads then share 2 cores: 17.8 s an epoch against 1-2 alone (seen
        # 2026-12-07), and every training time the grid records is wrong
        _run(["dvc", "queue", "stop"])
        for name in failed:
            subprocess.run(["dvc", "queue", "logs", name])
        if failed:
            print(f"grid: {', '.join(failed)} failed (their logs are above)", file=sys.stderr)
        return 1 if failed else 0
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json", "-A"], check=True, capture_output=True).stdout)
    out = Path(args.out)
    earlier = json.loads(out.read_text())["runs"] if out.is_file() else []
    runs = collect(shown, machine_description(), earlier)
    write_json(args.out, {"runs": runs})
    print(f"grid: {len(runs)} experiments in {len(groups(runs))} groups -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
