"""Labels from file names: a pattern with the groups `identity` and `attribute` (params.yaml's prepare.pattern)
turns a folder of images into the labelled table every later stage reads."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facearith.errors import DataError

TABLE_COLUMNS = ["path", "identity", "attribute", "repeat", "image_id"]


@dataclass(frozen=True)
class ImageName:
    identity: str
    attribute: str
    repeat: int = 0
    image_id: int = 0


def compile_pattern(pattern: str) -> re.Pattern:
    """A file-name pattern, checked: it must compile and name the groups `identity` and `attribute`."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"prepare.pattern {pattern!r} is not a valid regular expression: {exc}") from None
    missing = {"identity", "attribute"} - set(compiled.groupindex)
    if missing:
        raise DataError(
            f"prepare.pattern {pattern!r} lacks the named group(s) {sorted(missing)}; write e.g. "
            "(?P<identity>...) and (?P<attribute>...)"
        )
    return compiled


def parse_name(name: str, pattern: str | re.Pattern) -> ImageName | None:
    """The two labels (and repeat, image id) from a file name, or None when the name does not match."""
    compiled = pattern if isinstance(pattern, re.Pattern) else compile_pattern(pattern)
    m = compiled.match(name)
    if m is None:
        return None
    groups = m.groupdict()
    ints = {k: int(groups[k]) for k in ("repeat", "image_id") if groups.get(k)}
    return ImageName(groups["identity"], groups["attribute"], **ints)


def build_table(raw_dir: str | os.PathLike, pattern: str) -> tuple[pd.DataFrame, list[str]]:
    """The labelled table of the files in `raw_dir` (sorted by name), and the names that did not match.

    Files may have any extension or none; whether they are images is found out when they are read.
    """
    compiled = compile_pattern(pattern)
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir} does not exist; run `dvc repro data` first")
    rows, skipped = [], []
    for i, path in enumerate(sorted(p for p in raw_dir.iterdir() if p.is_file())):
        name = parse_name(path.name, compiled)
        if name is None:
            skipped.append(path.name)
            continue
        image_id = name.image_id if "image_id" in compiled.groupindex else i
        rows.append((path.as_posix(), name.identity, name.attribute, name.repeat, image_id))
    if not rows:
        raise DataError(f"no file in {raw_dir} matches prepare.pattern {compiled.pattern!r}")
    return pd.DataFrame(rows, columns=TABLE_COLUMNS), skipped


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read the prepared table; labels stay strings (JAFFE has a person 'NA', which pandas would make NaN)."""
    if not Path(path).is_file():
        raise DataError(f"{path} not found; run `dvc repro prepare` first")
    return pd.read_csv(path, dtype={"path": str, "identity": str, "attribute": str}, keep_default_na=False)
