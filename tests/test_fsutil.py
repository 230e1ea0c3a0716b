import os
import stat
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


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_users_normal_permissions(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        fsutil.write_json(tmp_path / "m.json", {"a": 1})
        with fsutil.atomic_path(tmp_path / "p.png") as tmp:
            tmp.write_bytes(b"x")
        with fsutil.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("1")
        plain = tmp_path / "plain"
        plain.write_text("as open() makes it")
    finally:
        os.umask(old)
    assert stat.S_IMODE(plain.stat().st_mode) == file_mode  # what any other tool would give
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "p.png").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == dir_mode
