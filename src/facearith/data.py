"""Raw image sets: JAFFE-style file names, fetching and safely extracting an archive, loading images."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from facearith.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from facearith.config import DataParams, PrepareParams

EXPRESSIONS = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")
# JAFFE's naming, PERSON.EXPR<repeat>.<image id>.tiff (e.g. KA.HA1.29.tiff); the synthetic set uses it too.
# Any two-label set works with its own pattern: named groups `identity` and `attribute` are required,
# `repeat` and `image_id` (integers) are optional.
DEFAULT_PATTERN = r"^(?P<identity>[A-Za-z0-9]+)\.(?P<attribute>[A-Z]{2})(?P<repeat>\d+)\.(?P<image_id>\d+)\.tiff?$"

ACCESS_HELP = (
    "JAFFE is served by Zenodo (doi:10.5281/zenodo.3451524) only to users it approves: request access there, then "
    "either set data.jaffe.archive to your downloaded jaffedbase.zip (e.g. "
    "`dvc exp run -S data.jaffe.archive=/path/to/jaffedbase.zip`) or set data.jaffe.url to your download link "
    "(an access token, if the link needs one, goes in the environment variable named by data.jaffe.token_env)."
)


@dataclass(frozen=True)
class ImageName:
    identity: str
    attribute: str
    repeat: int = 0
    image_id: int = 0


def compile_pattern(pattern: str = DEFAULT_PATTERN) -> re.Pattern:
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


def parse_name(name: str, pattern: str | re.Pattern = DEFAULT_PATTERN) -> ImageName | None:
    """The two labels (and repeat, image id) from a file name, or None when the name does not match."""
    compiled = pattern if isinstance(pattern, re.Pattern) else compile_pattern(pattern)
    m = compiled.match(name)
    if m is None:
        return None
    groups = m.groupdict()
    ints = {k: int(groups[k]) for k in ("repeat", "image_id") if groups.get(k)}
    return ImageName(groups["identity"], groups["attribute"], **ints)


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """An image as a 2-D uint8 array; palette (P) and colour images are converted to grey on load."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from None


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, target: Path, token: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `target`, all or nothing: a short read (truncated transfer) is an error."""
    request = urllib.request.Request(url, headers={"User-Agent": "facearith"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    tmp = target.with_name(f".{target.name}.part")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            expected = response.headers.get("Content-Length")
            shutil.copyfileobj(response, out, 1 << 20)
            got = out.tell()
        if expected is not None and got != int(expected):
            raise DataError(f"download of {url} was cut short: {got} of {expected} bytes; try again")
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        hint = " (access denied: check your token or link)" if exc.code in (401, 403) else ""
        raise DataError(f"download of {url} failed: HTTP {exc.code}{hint}. {ACCESS_HELP}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(f"download of {url} failed: {reason}. {ACCESS_HELP}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def safe_extract_images(archive: Path, dest: Path, pattern: str = DEFAULT_PATTERN) -> list[str]:
    """Extract the image files of a zip into `dest` (flat), refusing entries that would escape it.

    Non-image members (a readme, folders) are skipped; links, absolute paths and `..` are refused.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"{archive} is not a readable zip archive ({exc}); it may be truncated: download it again"
        ) from None
    compiled = compile_pattern(pattern)
    written: list[str] = []
    with zf:
        for info in zf.infolist():
            name = info.filename
            path = PurePosixPath(name.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
                raise DataError(
                    f"{archive}: entry '{name}' would be written outside the target folder; refusing the archive"
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{archive}: entry '{name}' is a symbolic link; refusing the archive")
            if info.is_dir() or parse_name(path.name, compiled) is None:
                continue
            if path.name in written:
                raise DataError(f"{archive}: image '{path.name}' appears twice; refusing the archive")
            try:
                with zf.open(info) as src, open(dest / path.name, "wb") as out:
                    shutil.copyfileobj(src, out)
            except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
                raise DataError(f"{archive}: entry '{name}' is damaged ({exc}); download the archive again") from None
            written.append(path.name)
    if not written:
        raise DataError(f"{archive} holds no images named like PERSON.EXPR<n>.<id>.tiff; is it the JAFFE archive?")
    return sorted(written)


def fetch_jaffe(
    dest: str | os.PathLike,
    *,
    archive: str = "",
    url: str = "",
    sha256: str = "",
    token_env: str = "",
    cache_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Materialise JAFFE's images in `dest` from a local archive or a URL; verify, then extract all or nothing."""
    from facearith.fsutil import atomic_dir

    dest = Path(dest)
    if archive:
        source = Path(archive).expanduser()
        if not source.is_file():
            raise DataError(f"data.jaffe.archive: {source} does not exist. {ACCESS_HELP}")
    elif url:
        cache = Path(cache_dir) if cache_dir else dest.parent
        cache.mkdir(parents=True, exist_ok=True)
        source = cache / (Path(urllib.parse.urlparse(url).path).name or "jaffedbase.zip")
        token = os.environ.get(token_env) if token_env else None
        download(url, source, token=token)
    else:
        raise DataError(f"no JAFFE source is set (data.jaffe.archive and data.jaffe.url are empty). {ACCESS_HELP}")
    if sha256:
        actual = sha256_of(source)
        if actual.lower() != sha256.lower():
            if url and not archive:
                source.unlink(missing_ok=True)  # a bad download must not be reused next time
            raise DataError(
                f"{source}: sha256 is {actual}, expected {sha256} (data.jaffe.sha256); "
                "the file is damaged or not the expected archive: fetch it again or fix the checksum"
            )
    with atomic_dir(dest) as tmp:
        names = safe_extract_images(source, tmp)
    return names


TABLE_COLUMNS = ["path", "identity", "attribute", "repeat", "image_id"]


def build_table(raw_dir: str | os.PathLike, pattern: str = DEFAULT_PATTERN) -> tuple[pd.DataFrame, list[str]]:
    """The labelled table of the files in `raw_dir` (sorted by name), and the names that did not match.

    Files may have any extension or none; whether they are images is found out when they are read.
    """
    import pandas as pd

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


def select_one_per_pair(table: pd.DataFrame) -> np.ndarray:
    """The seed's choice: one image per (identity, attribute) pair, the lowest repeat, then the lowest id."""
    order = table.sort_values(["identity", "attribute", "repeat", "image_id"])
    first = order.groupby(["identity", "attribute"], sort=False).head(1).index
    return table.index.isin(first)


def is_image(path: str | os.PathLike) -> bool:
    """Whether Pillow recognises the file as an image (its header, not its name: files need no extension)."""
    try:
        with Image.open(path) as im:
            im.verify()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return False
    return True


def copy_folder(source: str | os.PathLike, dest: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Copy the image files at the top of `source` into `dest`, all or nothing; return (copied, skipped).

    Files Pillow cannot open (a notes.txt, a thumbnail database) are skipped and returned by name, so that the
    stage reports them instead of counting them as images.
    """
    from facearith.fsutil import atomic_dir

    source = Path(source).expanduser()
    if not source.is_dir():
        raise DataError(f"data.folder.path: {source} is not a folder; point it at a folder of images")
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if is_image(p)]
    skipped = [p.name for p in files if p not in images]
    if not images:
        raise DataError(f"data.folder.path: {source} holds no image files Pillow can read ({len(files)} other files)")
    with atomic_dir(dest) as tmp:
        for p in images:
            shutil.copy2(p, tmp / p.name)
    return [p.name for p in images], skipped


def load_images(paths: list[str]) -> list[np.ndarray]:
    return [load_gray(p) for p in paths]


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read the prepared table; labels stay strings (JAFFE has a person 'NA', which pandas would make NaN)."""
    import pandas as pd

    if not Path(path).is_file():
        raise DataError(f"{path} not found; run `dvc repro prepare` first")
    return pd.read_csv(path, dtype={"path": str, "identity": str, "attribute": str}, keep_default_na=False)


def materialise(p: DataParams, dest: str | os.PathLike, cache_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The raw image set `data.source` names, in `dest`, all or nothing: (image names, files skipped as
    not images). `cache_dir` keeps a downloaded archive between runs."""
    from facearith.fsutil import atomic_dir

    if p.source == "synthetic":
        from facearith import synthetic

        s = p.synthetic
        with atomic_dir(dest) as tmp:
            return synthetic.generate(tmp, s.persons, s.images_per_pair, s.size, s.seed, s.nuisance), []
    if p.source == "folder":
        return copy_folder(p.folder.path, dest)
    j = p.jaffe
    names = fetch_jaffe(dest, archive=j.archive, url=j.url, sha256=j.sha256, token_env=j.token_env, cache_dir=cache_dir)
    return names, []


def prepare_table(raw_dir: str | os.PathLike, p: PrepareParams) -> tuple[pd.DataFrame, list[str]]:
    """The labelled table of `raw_dir` with the `selected` (training and indexed) rows, and the skipped names."""
    table, skipped = build_table(raw_dir, p.pattern)
    table["selected"] = split(table, p.split, p.seed, p.folds, p.fold)
    return table, skipped


def fold_of_pairs(pairs: list[tuple[str, str]], folds: int, seed: int) -> dict[tuple[str, str], int]:
    """Each pair in exactly one of `folds` folds, sizes differing by at most one, drawn with `seed`."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    return {pairs[j]: i % folds for i, j in enumerate(order)}


def split(table: pd.DataFrame, mode: str, seed: int = 0, folds: int = 5, fold: int = 0) -> np.ndarray:
    """Which rows train (True) and which are held out (False); see params.yaml's prepare.split.

    pairs: the (identity, attribute) pairs fall into `folds` seeded folds; every image of fold `fold`'s pairs
    is held out (zero-shot: the network never sees the pair it is asked for)."""
    if mode == "seed":
        return select_one_per_pair(table)
    if mode == "all":
        return np.ones(len(table), dtype=bool)
    if mode == "pairs":
        pairs = sorted({(str(i), str(a)) for i, a in zip(table.identity, table.attribute, strict=True)})
        if not 2 <= folds <= len(pairs):
            raise ConfigError(f"prepare.folds is {folds}; it must be between 2 and the number of pairs ({len(pairs)})")
        if not 0 <= fold < folds:
            raise ConfigError(f"prepare.fold is {fold}; with prepare.folds {folds} it must be 0 to {folds - 1}")
        held = {p for p, f in fold_of_pairs(pairs, folds, seed).items() if f == fold}
        return np.array([(str(i), str(a)) not in held for i, a in zip(table.identity, table.attribute, strict=True)])
    if mode != "images":
        raise ValueError(f"unknown split {mode!r}")
    rng = np.random.default_rng(seed)
    train = np.ones(len(table), dtype=bool)
    # pairs in sorted order, rows by (repeat, image id): the draw depends on the seed and the labels only
    order = table.sort_values(["identity", "attribute", "repeat", "image_id"])
    for _, rows in order.groupby(["identity", "attribute"], sort=True):
        if len(rows) >= 2:
            train[table.index.get_loc(rows.index[rng.integers(len(rows))])] = False
    return train
