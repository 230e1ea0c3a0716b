"""Run every shell command of the README, in order, in a fresh copy of the project, as a newcomer would.

Each command must succeed and leave params.yaml as committed. `make test` runs where the README puts it, after
the copy's own `make repro` has rewritten metrics/ and dvc.lock, as on a newcomer's machine: the whole suite but
the test that runs this script (it would recurse); with `--tiny` only the tests marked `checkout`, those that
read the checkout's own docs, params and grid (the rest run in the suite that called this). Placeholders stand
for what a user brings: /path/to/jaffedbase.zip becomes the shared JAFFE copy (the command is skipped where
there is none), /path/to/faces a folder of two-label images made from the synthetic set. A command that ends in
`&` (`facearith serve &`) runs in the background until the check ends, on a free port instead of 8000 (every
`127.0.0.1:8000` of the commands after it too), and fails the check if it has stopped by then. `--tiny` commits a
tiny configuration first and borrows this environment's .venv instead of installing one, so that the test suite
can run the same commands in a few minutes.

    python tools/docs_check.py            # what `make docs-check` runs: a real install, the real defaults
    python tools/docs_check.py --tiny     # the tests' variant
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
JAFFE_ZIP = ROOT.parent / "shared" / "data" / "jaffe" / "jaffedbase.zip"
TINY = {
    "data": {"synthetic": {"persons": 3, "images_per_pair": 6, "size": 48}},
    "model": {"dim": 8},
    "train": {"epochs": 1, "image_size": 32, "batch_size": 8, "threads": 1},
    # stage train continues stage fuse's network (final.start: inner) for final.epochs: one, not the default 80,
    # which every `dvc exp run` of the README trained again (the check took 355 s with 80, 171 s with 1)
    "final": {"epochs": 1},
    "evaluate": {"seed_queries": 10},
}
# what `make test` runs here (pytest reads PYTEST_ADDOPTS), with and without --tiny
TEST_SELECTION = {
    True: "-m checkout",
    False: "--deselect tests/test_docs.py::test_every_readme_command_runs_in_order_in_a_fresh_copy",
}


def commands(markdown: str) -> list[str]:
    """The commands of the ```bash blocks, in order; a trailing backslash joins the next line."""
    out: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.M | re.S):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line = (pending + line).strip()
            pending = ""
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fresh_copy(dest: Path, tiny: bool) -> None:
    """What `git clone` of this working tree would give: tracked and new files, nothing ignored."""
    files = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if tiny:
        params = _merge(yaml.safe_load((dest / "params.yaml").read_text()), TINY)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # borrow this environment: the Makefile's .venv made of links to it, marked installed
        venv = dest / ".venv"
        venv.mkdir()
        for entry in Path(sys.prefix).iterdir():
            if entry.name != ".installed":
                (venv / entry.name).symlink_to(entry)
        (venv / ".installed").touch()
    for args in (
        ["init", "-q"],
        ["config", "user.email", "newcomer@example.com"],
        ["config", "user.name", "newcomer"],
        ["add", "-A"],
        ["commit", "-qm", "a fresh clone"],
    ):
        _git(dest, *args)


def two_label_folder(repo: Path, dest: Path) -> Path:
    """Images named like alice_smile_3.png, from the synthetic set, plus a file that is not an image."""
    dest.mkdir(exist_ok=True)
    from PIL import Image

    for tiff in sorted((repo / "data/raw").glob("*.tiff")):
        person, expr, image_id = tiff.name.split(".")[:3]
        Image.open(tiff).save(dest / f"{person.lower()}_{expr[:2].lower()}_{image_id}.png")
    (dest / "notes.txt").write_text("not a face")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In a background command's child, before exec: end with this check's process even when that is killed
    outright (SIGKILL, a test's timeout), which no `finally` sees. Linux only (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def stop_on(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # SIGTERM or SIGHUP as an exit: `finally` stops the background commands


def run(tiny: bool, keep: bool) -> int:
    readme = (ROOT / "README.md").read_text()
    work = Path(tempfile.mkdtemp(prefix="facearith-docs-"))
    repo = work / "facearith"
    repo.mkdir()
    fresh_copy(repo, tiny)
    committed = (repo / "params.yaml").read_bytes()
    env = dict(os.environ)
    # nothing of the caller's make either: `make test PYTEST_ADDOPTS=...` passes its variables on in MAKEFLAGS, and
    # they would override the copy's own `make test` selection below (the suite ran this check inside itself)
    for name in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    if tiny:  # the borrowed environment's facearith must be this copy's code
        env["PYTHONPATH"] = str(repo / "src")
    else:  # a newcomer's shell: nothing of this environment on PATH
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    sourced: list[str] = []
    failures = 0
    applied = False
    port = free_port()
    background: list[tuple[str, subprocess.Popen, Path]] = []
    try:
        for cmd in commands(readme):
            bare = re.sub(r"\s+#\s.*$", "", cmd)  # without its trailing comment
            actual = cmd
            run_env = dict(env, PYTEST_ADDOPTS=TEST_SELECTION[tiny]) if bare == "make test" else env
            if "/path/to/jaffedbase.zip" in cmd:
                if not JAFFE_ZIP.is_file():
                    print(f"skip  {cmd}  (no JAFFE copy at {JAFFE_ZIP})", flush=True)
                    continue
                actual = actual.replace("/path/to/jaffedbase.zip", str(JAFFE_ZIP))
            if "/path/to/faces" in cmd:
                actual = actual.replace("/path/to/faces", str(two_label_folder(repo, work / "faces")))
            if bare.startswith("source "):
                sourced.append(bare)
            actual = actual.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            if bare.endswith("&"):
                log = work / f"background{len(background)}.log"
                script = bare[:-1].strip().replace("facearith serve", f"facearith serve --port {port}", 1)
                with open(log, "w") as out:
                    proc = subprocess.Popen(
                        ["bash", "-c", "\n".join(["set -e", *sourced, f"exec {script}"])],
                        cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        start_new_session=True, preexec_fn=die_with_parent,
                    )  # fmt: skip
                background.append((bare, proc, log))
                print(f"bg      {bare}", flush=True)
                continue
            start = time.monotonic()
            proc = subprocess.run(
                ["bash", "-c", "\n".join(["set -e", *sourced, actual])],  # newlines: a comment ends with its line
                cwd=repo,
                env=run_env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            seconds = time.monotonic() - start
            problems = []
            if proc.returncode != 0:
                problems.append(f"exit {proc.returncode}")
            # `dvc exp apply` brings a run's params in on purpose, until the README's `git checkout` returns
            applied = (applied or bare.startswith("dvc exp apply")) and "git checkout" not in bare
            if not applied and (repo / "params.yaml").read_bytes() != committed:
                problems.append("params.yaml was left changed")
                (repo / "params.yaml").write_bytes(committed)
            print(f"{'FAIL' if problems else 'ok'}    {bare}  ({seconds:.0f} s)", flush=True)
            if problems:
                failures += 1
                print(f"      {', '.join(problems)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", flush=True)
        for bare, proc, log in background:
            if proc.poll() is not None:
                failures += 1
                print(f"FAIL    {bare}  (stopped: exit {proc.returncode})\n{log.read_text()[-3000:]}", flush=True)
    finally:
        for _, proc, _ in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"docs-check: {failures} of the README's commands failed" if failures else "docs-check: all commands ran")
    return 1 if failures else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny configuration and this environment's .venv")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on)
    sys.exit(run(args.tiny, args.keep))
