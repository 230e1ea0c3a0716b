"""Atomic writes: outputs appear whole or not at all, so DVC never takes a half-written file as done.

Temporary names carry the writer's PID; one left by a killed writer (SIGKILL cannot be caught) is removed
by the next write to the same target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (no threads write files meanwhile)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 (private temporaries); a finished output gets the mode `open` would
    give it under the user's umask, like any other tool's output (0644/0755 under umask 022)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def remove_stale(target: str | os.PathLike) -> list[Path]:
    """Delete temporary siblings of `target` left by writers that no longer run; return what was removed."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    pattern = re.compile(re.escape(_prefix(target)) + r"(\d+)-")
    for p in target.parent.iterdir():
        m = pattern.match(p.name)
        if m and int(m[1]) != os.getpid() and not _alive(int(m[1])):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_prefix(target)}{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _normal_mode(tmp, directory=True)
    old = target.with_name(f"{_prefix(target)}{os.getpid()}-old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `target`; it is renamed onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    fd, name = tempfile.mkstemp(prefix=f"{_prefix(target)}{os.getpid()}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _normal_mode(tmp, directory=False)
    os.replace(tmp, target)


def sha256(path: str | os.PathLike) -> str:
    """A file's SHA-256, read in blocks of 1 MiB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
