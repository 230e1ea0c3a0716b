"""Raw image sets: the synthetic faces, a folder of images, or JAFFE from a local archive or a link (checked,
then extracted safely), each materialised all or nothing."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from facearith import fsutil
from facearith.config import DataParams
from facearith.data import synthetic
from facearith.data.images import is_image
from facearith.errors import DataError
from facearith.fsutil import atomic_dir

# the archive's images are picked by suffix; their names are parsed later, by prepare.pattern
IMAGE_SUFFIXES = (".tiff", ".tif")

ACCESS_HELP = (
    "JAFFE is served by Zenodo (doi:10.5281/zenodo.3451524) only to users it approves: request access there, then "
    "either set data.jaffe.archive to your downloaded jaffedbase.zip (e.g. "
    "`dvc exp run -S data.jaffe.archive=/path/to/jaffedbase.zip`) or set data.jaffe.url to your download link "
    "(an access token, if the link needs one, goes in the environment variable named by data.jaffe.token_env)."
)


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


def safe_extract_images(archive: Path, dest: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[str]:
    """Extract the image files (by `suffixes`) of a zip into `dest` (flat), refusing entries that would escape it.

    Other members (a readme, folders) are skipped; links, absolute paths and `..` are refused.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"{archive} is not a readable zip archive ({exc}); it may be truncated: download it again"
        ) from None
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
            if info.is_dir() or path.suffix.lower() not in suffixes or path.name.startswith("."):
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
        raise DataError(f"{archive} holds no {' or '.join(suffixes)} images; is it the JAFFE archive?")
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
        actual = fsutil.sha256(source)  # `sha256` here is the expected checksum
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


def copy_folder(source: str | os.PathLike, dest: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Copy the image files at the top of `source` into `dest`, all or nothing; return (copied, skipped).

    Files Pillow cannot open (a notes.txt, a thumbnail database) are skipped and returned by name, so that the
    stage reports them instead of counting them as images.
    """
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


def materialise(p: DataParams, dest: str | os.PathLike, cache_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The raw image set `data.source` names, in `dest`, all or nothing: (image names, files skipped as
    not images). `cache_dir` keeps a downloaded archive between runs."""
    if p.source == "synthetic":
        s = p.synthetic
        with atomic_dir(dest) as tmp:
            return synthetic.generate(tmp, s.persons, s.images_per_pair, s.size, s.seed, s.nuisance), []
    if p.source == "folder":
        return copy_folder(p.folder.path, dest)
    j = p.jaffe
    names = fetch_jaffe(dest, archive=j.archive, url=j.url, sha256=j.sha256, token_env=j.token_env, cache_dir=cache_dir)
    return names, []
