import subprocess
import sys

import pytest

from facearith import fsutil


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with fsutil.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(RuntimeError), fsutil.atomic_dir(target) as tmp:
        (tmp / "b").write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a"]  # the old output stands, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_killed_writers_leftovers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "model.pt"
    # a writer that dies (SIGKILL) inside the block leaves its temporary file behind
    code = (
        "import os, signal, sys; sys.path.insert(0, sys.argv[2]); from facearith import fsutil\n"
        "with fsutil.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half'); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target), str(fsutil.__file__).rsplit("/facearith", 1)[0]])
    assert proc.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".model.pt.tmp-") and not target.exists()
    fsutil.write_json(target, {"ok": True})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    target = tmp_path / "x.json"
    with fsutil.atomic_path(target) as mine:
        mine.write_text("{}")
        assert fsutil.remove_stale(target) == []  # our own, in progress
        assert mine.exists()
