"""Interrupted runs, resuming, determinism and bad data, through the real stage scripts and DVC."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import ROOT, stage_cmd
from .test_pipeline import TINY, _merge, _run

ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
# tiny runs finish in seconds: a checkpoint after every epoch, so that an interrupt finds one to resume
EVERY_EPOCH = {"checkpoint": {"every_s": 0}}
POLL_S = 0.05  # between looks at a checkpoint, waiting to interrupt the run that writes it


def _workdir(root: Path, over: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), _merge(_merge(TINY, EVERY_EPOCH), over))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("data", "prepare"):
        subprocess.run(stage_cmd(stage), cwd=root, env=ENV, check=True, capture_output=True)
    return root


def _stage(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(stage_cmd(name), cwd=root, env=ENV, capture_output=True, text=True)


def _epochs_done(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["epochs_done"]
    except Exception:
        return 0


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child: SIGINT's default, which Python turns into KeyboardInterrupt. A shell without job control
    starts its background jobs (a CI runner's, `make test &`) with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_training(
    root: Path, sig: int, checkpoint: str = "checkpoints/train.pt", stage: str = "train"
) -> subprocess.Popen:
    proc = subprocess.Popen(
        stage_cmd(stage),
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    ck = root / checkpoint
    deadline = time.monotonic() + 300
    while _epochs_done(ck) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(POLL_S)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for d in ("models", "metrics") if (root / d).exists() for p in (root / d).iterdir())


# enough that the signal lands mid-run on a fast CPU: a tiny epoch with its checkpoint takes 0.43 s on the slowest
# CPU seen (an AVX2 EPYC VM), tens of ms on a fast one, and the signal follows the second epoch's checkpoint within
# a poll. 40 until 2026-12-08: each run cost twice the CPU, in a suite that must fit 15 minutes on the slow VM
EPOCHS = 20
# a cosine schedule and weight averaging from epoch 3: the resumed run must restore both mid-way
RESUMED = {"train": {"epochs": EPOCHS, "schedule": "cosine", "swa_from": 0.05}}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The uninterrupted run that each interrupted one must reproduce (shared: both signals compare with it)."""
    whole = _workdir(tmp_path_factory.mktemp("whole"), RESUMED)
    done = _stage(whole, "train")
    assert done.returncode == 0
    if not torch.cuda.is_available():  # the CPU is stated once, as information
        assert "device cpu (train.device auto, no CUDA device)" in done.stdout and "warning" not in done.stdout
    assert not (whole / "checkpoints/train.pt").exists()  # removed once training finished
    return whole


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_training_leaves_nothing_and_resumes_to_the_same_model(whole, tmp_path, sig):
    cut = _workdir(tmp_path / "cut", RESUMED)
    proc = _interrupt_training(cut, sig)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    assert not (cut / "models/model.pt").exists() and not (cut / "metrics/train.json").exists()
    if sig == signal.SIGINT:
        assert _leftovers(cut) == []  # not even a temporary file
    resumed = _stage(cut, "train")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoints/train.pt after epoch" in resumed.stdout

    a = torch.load(whole / "models/model.pt", weights_only=True)["state_dict"]
    b = torch.load(cut / "models/model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    mw = json.loads((whole / "metrics/train.json").read_text())
    mc = json.loads((cut / "metrics/train.json").read_text())
    assert mw["loss"] == mc["loss"]
    # the resumed run reports the whole run: all epochs, of which only the rest ran in this process
    before = int(resumed.stdout.split("after epoch ")[1].split()[0])
    assert 2 <= before < EPOCHS and mc["epochs"] == EPOCHS and mc["epochs_this_run"] == EPOCHS - before
    assert mw["epochs_this_run"] == EPOCHS and mw["seconds"] == pytest.approx(mw["seconds_this_run"], abs=0.1)
    assert mc["seconds"] > mc["seconds_this_run"] > 0
    said = re.search(rf"{EPOCHS} epochs in ([0-9.]+) s, {before} of them before a resume", resumed.stdout)
    assert said and float(said[1]) == pytest.approx(mc["seconds"], abs=0.06)  # the whole run, as in train.json


def test_an_ensemble_killed_in_its_second_member_resumes_there_to_the_same_model(tmp_path):
    over = {"model": {"members": 2}, "train": {"epochs": EPOCHS, "swa_from": 0.05}}
    whole = _workdir(tmp_path / "whole", over)
    assert _stage(whole, "train").returncode == 0
    cut = _workdir(tmp_path / "cut", over)
    proc = _interrupt_training(cut, signal.SIGKILL, "checkpoints/train.member1.pt")
    assert proc.returncode == -signal.SIGKILL and _epochs_done(cut / "checkpoints/train.pt") == EPOCHS
    resumed = _stage(cut, "train")
    assert resumed.returncode == 0, resumed.stderr
    # member 0 is replayed whole from its checkpoint, member 1 continues where it was killed
    assert f"resuming from checkpoints/train.pt after epoch {EPOCHS}" in resumed.stdout
    assert "resuming from checkpoints/train.member1.pt after epoch" in resumed.stdout
    a = torch.load(whole / "models/model.pt", weights_only=True)["state_dict"]
    b = torch.load(cut / "models/model.pt", weights_only=True)["state_dict"]
    assert any(k.startswith("members.1.") for k in a) and all(torch.equal(a[k], b[k]) for k in a)
    assert list((cut / "checkpoints").iterdir()) == []  # both members' checkpoints removed once finished
    mw, mc = (json.loads((r / "metrics/train.json").read_text()) for r in (whole, cut))
    assert mw["loss"] == mc["loss"] and mw["epochs_this_run"] == 2 * EPOCHS and mc["epochs_this_run"] < EPOCHS


# stage fuse's inner rule (three images per pair, so that it has some to hold out) over an EPOCHS-long inner network
INNER = {"data": {"synthetic": {"images_per_pair": 3}}, "features": {"fuse": "inner"}, "train": {"epochs": EPOCHS}}


@pytest.fixture(scope="module")
def whole_fuse(tmp_path_factory) -> Path:
    whole = _workdir(tmp_path_factory.mktemp("whole_fuse"), INNER)
    done = _stage(whole, "fuse")
    assert done.returncode == 0, done.stderr
    assert "resuming" not in done.stdout and list((whole / "checkpoints").iterdir()) == []
    return whole


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_stage_fuse_interrupted_in_its_inner_network_resumes_to_the_same_weights(whole_fuse, tmp_path, sig):
    cut = _workdir(tmp_path / "cut", INNER)
    proc = _interrupt_training(cut, sig, "checkpoints/train.fuse.pt", stage="fuse")
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    assert not (cut / "models/fuse.json").exists() and not (cut / "metrics/fuse.json").exists()
    if sig == signal.SIGINT:
        assert _leftovers(cut) == []
    resumed = _stage(cut, "fuse")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoints/train.fuse.pt after epoch" in resumed.stdout
    # the same inner network, so the same scores and weights, byte for byte; the checkpoint is gone
    assert (cut / "models/fuse.json").read_bytes() == (whole_fuse / "models/fuse.json").read_bytes()
    assert list((cut / "checkpoints").iterdir()) == []
    # it resumed mid-way, and both runs report their inner network's seconds
    before = int(resumed.stdout.split("after epoch ")[1].split()[0])
    seconds = [json.loads((r / "metrics/fuse.json").read_text())["inner"]["seconds"] for r in (whole_fuse, cut)]
    assert 2 <= before < EPOCHS and seconds[1] > 0 and seconds[0] > 0


def test_stage_fuse_does_not_resume_a_checkpoint_of_another_draw(tmp_path):
    """Another prepare.seed draws other held-out images, and so other inner ones: the inner network's checkpoint
    of the first draw must not be continued."""
    root = _workdir(tmp_path, INNER)
    _interrupt_training(root, signal.SIGKILL, "checkpoints/train.fuse.pt", stage="fuse")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["prepare"]["seed"] = 7  # the table is prepared again below: its training rows may change too
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert _stage(root, "prepare").returncode == 0
    proc = _stage(root, "fuse")
    assert proc.returncode == 0 and "is of other params, data or code; starting afresh" in proc.stdout


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path):
    root = _workdir(tmp_path, {"train": {"epochs": EPOCHS}})
    _interrupt_training(root, signal.SIGINT)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["lr"] = 0.002
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(root, "train")
    assert proc.returncode == 0 and "is of other params, data or code; starting afresh" in proc.stdout


def test_dvc_repro_after_an_interrupt_and_two_forced_runs_agree(tmp_path):
    root = tmp_path
    for name in ("dvc.yaml", "stages", "src", ".dvcignore", ".gitignore"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    over = _merge(EVERY_EPOCH, {"train": {"epochs": EPOCHS}})
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), _merge(TINY, over))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
    ):
        _run(cmd, root)

    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    deadline = time.monotonic() + 300
    while _epochs_done(root / "checkpoints/train.pt") < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(POLL_S)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches dvc and the stage alike
    said = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, said
    assert not (root / "models/model.pt").exists()
    assert "train" in _run(["dvc", "status"], root)  # DVC does not take the train stage as done

    out = _run(["dvc", "repro"], root)
    assert "resuming from" in out
    assert "up to date" in _run(["dvc", "status"], root)
    first = json.loads((root / "metrics/eval.json").read_text())
    loss = json.loads((root / "metrics/train.json").read_text())["loss"]

    _run(["dvc", "repro", "--force"], root)
    assert json.loads((root / "metrics/eval.json").read_text()) == first
    assert json.loads((root / "metrics/train.json").read_text())["loss"] == loss


def test_training_on_a_single_expression_is_a_clear_error(tmp_path):
    root = _workdir(tmp_path, {})
    for p in (root / "data/raw").iterdir():
        if ".HA" not in p.name:
            p.unlink()
    assert _stage(root, "prepare").returncode == 0
    proc = _stage(root, "train")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "training needs at least 2 expressions (attributes), the data has 1" in proc.stderr
    assert _leftovers(root) == []


def test_odd_images_are_converted_or_named(tmp_path):
    from PIL import Image

    root = _workdir(tmp_path, {})
    raw = root / "data/raw"
    victims = sorted(raw.iterdir())
    Image.open(victims[0]).convert("RGB").resize((80, 60)).save(victims[0], format="TIFF")  # colour, other size
    Image.open(victims[1]).convert("P").save(victims[1], format="TIFF")  # palette
    (raw / "notes.txt").write_text("not an image")  # does not follow the naming: reported, left out
    proc = _stage(root, "prepare")
    assert proc.returncode == 0 and "1 files do not match prepare.pattern" in proc.stdout and "notes.txt" in proc.stdout
    assert _stage(root, "train").returncode == 0
    victims[2].write_bytes(b"garbage")
    assert _stage(root, "prepare").returncode == 0
    proc = _stage(root, "train")
    assert proc.returncode == 1 and f"cannot read image data/raw/{victims[2].name}" in proc.stderr


def test_killed_indexing_leaves_no_index_and_the_rerun_cleans_up(tmp_path):
    import numpy as np
    import pandas as pd

    root = tmp_path
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    n = 150_000  # large enough that NGT takes seconds to build
    (root / "data/prepared").mkdir(parents=True)
    pd.DataFrame(
        {"path": ["x"] * n, "identity": ["a"] * n, "attribute": ["b"] * n, "repeat": 1, "image_id": 1, "selected": True}
    ).to_csv(root / "data/prepared/table.csv", index=False)
    rng = np.random.default_rng(0)
    np.save(root / "data/features.npy", rng.random((n, 64), dtype=np.float32))
    (root / "models").mkdir()  # the index records their checksums only
    (root / "models/model.pt").write_bytes(b"model")
    (root / "models/linear.npz").write_bytes(b"linear")
    (root / "models/fuse.json").write_text('{"identity": 0.3, "attribute": 0.1, "rule": "fixed"}')  # stage fuse's
    proc = subprocess.Popen(stage_cmd("index"), cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".index.tmp-") for p in (root / "data").iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "data/index").exists()  # nothing DVC could take as the finished index
    np.save(root / "data/features.npy", rng.random((500, 64), dtype=np.float32))
    pd.read_csv(root / "data/prepared/table.csv").head(500).to_csv(root / "data/prepared/table.csv", index=False)
    assert _stage(root, "index").returncode == 0
    assert sorted(p.name for p in (root / "data").iterdir()) == ["features.npy", "index", "prepared"]
