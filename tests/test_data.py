import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from facearith.data import images, labels, sources, splits
from facearith.errors import DataError

from .conftest import JAFFE_SHA256, PATTERN, ROOT, stage_cmd


def _tiff_bytes(mode="L", size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("L", size, 100)
    if mode == "P":
        img = img.convert("P")
    img.save(buf, format="TIFF")
    return buf.getvalue()


def _zip(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link
            zf.writestr(info, "../../etc/passwd")
    return path


def test_parse_name():
    n = labels.parse_name("KA.HA1.29.tiff", PATTERN)
    assert (n.identity, n.attribute, n.repeat, n.image_id) == ("KA", "HA", 1, 29)
    assert labels.parse_name("README.txt", PATTERN) is None
    assert labels.parse_name("KA.HA.29.tiff", PATTERN) is None


def test_load_gray_converts_palette_and_names_bad_files(tmp_path):
    p = tmp_path / "KA.AN1.39.tiff"
    p.write_bytes(_tiff_bytes("P"))
    arr = images.load_gray(p)
    assert arr.dtype == np.uint8 and arr.shape == (8, 8) and (arr == 100).all()
    bad = tmp_path / "KA.AN2.40.tiff"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="KA.AN2.40.tiff"):
        images.load_gray(bad)


def test_extract_skips_non_images_and_strips_folders(tmp_path):
    z = _zip(tmp_path / "a.zip", {"jaffedbase/KA.HA1.29.tiff": _tiff_bytes(), "jaffedbase/README": b"hi"})
    out = tmp_path / "out"
    out.mkdir()
    assert sources.safe_extract_images(z, out) == ["KA.HA1.29.tiff"]
    assert sorted(os.listdir(out)) == ["KA.HA1.29.tiff"]


@pytest.mark.parametrize(
    ("entries", "links", "message"),
    [
        ({"../KA.HA1.29.tiff": b"x"}, (), "outside the target folder"),
        ({"/abs/KA.HA1.29.tiff": b"x"}, (), "outside the target folder"),
        ({}, ("jaffedbase/KA.HA1.29.tiff",), "symbolic link"),
        ({"jaffedbase/readme.txt": b"x"}, (), "holds no .tiff or .tif images"),
    ],
)
def test_bad_archives_are_refused_and_leave_nothing(tmp_path, entries, links, message):
    z = _zip(tmp_path / "bad.zip", entries, links)
    dest = tmp_path / "raw"
    with pytest.raises(DataError, match=message):
        sources.fetch_jaffe(dest, archive=str(z))
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.zip"]  # no temporary folder left


def test_missing_source_says_how_to_get_access(tmp_path):
    with pytest.raises(DataError, match="request access") as err:
        sources.fetch_jaffe(tmp_path / "raw")
    assert "data.jaffe.archive" in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        sources.fetch_jaffe(tmp_path / "raw", archive=str(tmp_path / "nope.zip"))


def test_jaffe_from_local_archive(tmp_path, jaffe_zip):
    names = sources.fetch_jaffe(tmp_path / "raw", archive=str(jaffe_zip), sha256=JAFFE_SHA256)
    assert len(names) == 213
    table, skipped = labels.build_table(tmp_path / "raw", PATTERN)
    assert skipped == []
    assert table.identity.nunique() == 10 and table.attribute.nunique() == 7
    assert (table.groupby("identity").size()["KA"], table.groupby("attribute").size()["FE"]) == (23, 32)
    assert splits.select_one_per_pair(table).sum() == 70
    # the 23 palette images load as grey like the rest
    assert images.load_gray(tmp_path / "raw" / "KA.AN1.39.tiff").shape == (256, 256)


def test_jaffe_over_http(tmp_path, jaffe_zip, http_root):
    folder, url = http_root
    (folder / "jaffedbase.zip").write_bytes(jaffe_zip.read_bytes())
    names = sources.fetch_jaffe(
        tmp_path / "raw", url=f"{url}/jaffedbase.zip", sha256=JAFFE_SHA256, cache_dir=tmp_path / "dl"
    )
    assert len(names) == 213
    assert len(os.listdir(tmp_path / "raw")) == 213


def test_http_token_is_sent(tmp_path, jaffe_zip, http_root, monkeypatch):
    folder, url = http_root
    (folder / "jaffedbase.zip").write_bytes(jaffe_zip.read_bytes())
    with pytest.raises(DataError, match="HTTP 403.*access denied"):
        sources.fetch_jaffe(tmp_path / "raw", url=f"{url}/private/jaffedbase.zip", cache_dir=tmp_path / "dl")
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    names = sources.fetch_jaffe(
        tmp_path / "raw", url=f"{url}/private/jaffedbase.zip", token_env="MY_TOKEN", cache_dir=tmp_path / "dl"
    )
    assert len(names) == 213


def test_http_cut_short_is_an_error_and_leaves_nothing(tmp_path, jaffe_zip, http_root):
    folder, url = http_root
    (folder / "jaffedbase.zip").write_bytes(jaffe_zip.read_bytes())
    dl = tmp_path / "dl"
    with pytest.raises(DataError, match="jaffedbase.zip"):
        sources.fetch_jaffe(tmp_path / "raw", url=f"{url}/cut/jaffedbase.zip", cache_dir=dl)
    assert not (tmp_path / "raw").exists()
    assert list(dl.iterdir()) == []


def test_http_truncated_file_is_refused(tmp_path, jaffe_zip, http_root):
    folder, url = http_root
    (folder / "jaffedbase.zip").write_bytes(jaffe_zip.read_bytes()[:5_000_000])
    with pytest.raises(DataError, match="not a readable zip archive"):
        sources.fetch_jaffe(tmp_path / "raw", url=f"{url}/jaffedbase.zip", cache_dir=tmp_path / "dl")
    assert not (tmp_path / "raw").exists()


def test_http_tampered_file_fails_the_checksum(tmp_path, jaffe_zip, http_root):
    folder, url = http_root
    payload = bytearray(jaffe_zip.read_bytes())
    payload[1000] ^= 0xFF
    (folder / "jaffedbase.zip").write_bytes(bytes(payload))
    dl = tmp_path / "dl"
    with pytest.raises(DataError, match=f"expected {JAFFE_SHA256}"):
        sources.fetch_jaffe(tmp_path / "raw", url=f"{url}/jaffedbase.zip", sha256=JAFFE_SHA256, cache_dir=dl)
    assert not (tmp_path / "raw").exists()
    assert list(dl.iterdir()) == []  # the bad download is not kept for next time


def test_http_missing_file(tmp_path, http_root):
    _, url = http_root
    with pytest.raises(DataError, match="HTTP 404"):
        sources.fetch_jaffe(tmp_path / "raw", url=f"{url}/nothing.zip", cache_dir=tmp_path / "dl")
    assert not (tmp_path / "raw").exists()


def test_read_table_keeps_person_na(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("path,identity,attribute,repeat,image_id,selected\nx,NA,HA,1,2,True\n")
    assert labels.read_table(p).identity.tolist() == ["NA"]


def test_corrupt_entry_is_refused_and_leaves_nothing(tmp_path):
    payload = bytes(range(256)) * 64
    z = _zip(tmp_path / "c.zip", {"jaffedbase/KA.HA1.29.tiff": payload})
    raw = bytearray(z.read_bytes())
    at = raw.index(payload[:64])  # stored uncompressed: flip a byte of the entry's data, so its CRC fails
    raw[at + 100] ^= 0xFF
    z.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="entry 'jaffedbase/KA.HA1.29.tiff' is damaged"):
        sources.fetch_jaffe(tmp_path / "raw", archive=str(z))
    assert not (tmp_path / "raw").exists()


def test_any_two_label_folder_with_its_own_pattern(tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    for i, (who, mood) in enumerate([("alice", "smile"), ("alice", "frown"), ("bob", "smile"), ("bob", "frown")]):
        img = Image.new("RGB", (20, 30), (40 * i, 10, 200))
        fmt = ["PNG", "JPEG", "BMP", "PNG"][i]
        img.save(src / f"{who}_{mood}_{i}", format=fmt)  # no extension at all
    (src / "README").write_text("about these faces")
    (src / "notes.txt").write_text("shot in 2024")
    Image.new("L", (8, 8)).save(src / "cover.png")  # an image whose name carries no labels
    names, not_images = sources.copy_folder(src, tmp_path / "raw")
    assert len(names) == 5 and not_images == ["README", "notes.txt"]  # only what Pillow opens is copied
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(names)
    pattern = r"^(?P<identity>[a-z]+)_(?P<attribute>[a-z]+)_(?P<image_id>\d+)$"
    table, skipped = labels.build_table(tmp_path / "raw", pattern)
    assert skipped == ["cover.png"]
    assert sorted(zip(table.identity, table.attribute, strict=True)) == [
        ("alice", "frown"),
        ("alice", "smile"),
        ("bob", "frown"),
        ("bob", "smile"),
    ]
    assert table.image_id.tolist() == [1, 0, 3, 2]
    assert {images.load_gray(p).shape for p in table.path} == {(30, 20)}


def test_bad_patterns_and_folders_are_named(tmp_path):
    with pytest.raises(DataError, match=r"lacks the named group\(s\) \['attribute'\]"):
        labels.compile_pattern(r"^(?P<identity>\w+)")
    with pytest.raises(DataError, match="not a valid regular expression"):
        labels.compile_pattern(r"^(?P<identity>")
    with pytest.raises(DataError, match="is not a folder"):
        sources.copy_folder(tmp_path / "nope", tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no image files Pillow can read"):
        sources.copy_folder(tmp_path / "empty", tmp_path / "raw")
    (tmp_path / "empty" / "notes.txt").write_text("no faces here")
    with pytest.raises(DataError, match=r"holds no image files Pillow can read \(1 other files\)"):
        sources.copy_folder(tmp_path / "empty", tmp_path / "raw")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="no file in .* matches prepare.pattern"):
        labels.build_table(tmp_path / "raw", PATTERN)
    assert not any(p.name.startswith(".raw") for p in tmp_path.iterdir())


def test_the_folder_source_stage_names_the_files_it_did_not_copy(tmp_path, cwd):
    src = tmp_path / "faces"
    src.mkdir()
    for who, mood in [("alice", "smile"), ("bob", "frown")]:
        Image.new("L", (16, 16), 90).save(src / f"{who}_{mood}_1.png")
    (src / "notes.txt").write_text("not a face")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["source"] = "folder"
    params["data"]["folder"]["path"] = str(src)
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(stage_cmd("data"), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 files in" in proc.stdout and "are not images and were not copied: ['notes.txt']" in proc.stdout
    assert "data: 2 images from 'folder'" in proc.stdout
    assert sorted(p.name for p in (cwd / "data/raw").iterdir()) == ["alice_smile_1.png", "bob_frown_1.png"]


def _pairs_table(counts: dict[tuple[str, str], int]):
    import pandas as pd

    rows, image_id = [], 0
    for (who, mood), n in counts.items():
        for rep in range(1, n + 1):
            image_id += 1
            rows.append((f"{who}.{mood}{rep}.{image_id}.tiff", who, mood, rep, image_id))
    return pd.DataFrame(rows, columns=labels.TABLE_COLUMNS)


def test_split_modes_on_a_tiny_table():
    counts = {("A", "HA"): 3, ("A", "SA"): 2, ("B", "HA"): 1, ("B", "SA"): 4}
    table = _pairs_table(counts)
    # seed: exactly today's one image per pair, the lowest repeat
    seed = splits.split(table, "seed")
    assert list(seed) == list(splits.select_one_per_pair(table))
    assert sorted(table[seed].repeat) == [1, 1, 1, 1] and seed.sum() == 4
    # images: one held out per pair that has two or more, all others train; no image in both splits
    images = splits.split(table, "images", seed=0)
    held = table[~images]
    assert sorted(zip(held.identity, held.attribute, strict=True)) == [("A", "HA"), ("A", "SA"), ("B", "SA")]
    assert images.sum() == len(table) - 3 and images.dtype == bool
    # seeded: the same seed draws the same images, other seeds draw others
    assert list(images) == list(splits.split(table, "images", seed=0))
    draws = {tuple(splits.split(table, "images", seed=s)) for s in range(20)}
    assert len(draws) > 1
    # independent of the table's row order
    shuffled = table.sample(frac=1, random_state=1)
    assert set(shuffled[splits.split(shuffled, "images", seed=0)].path) == set(table[images].path)
    assert splits.split(table, "all").all()


def test_pairs_split_holds_out_whole_pairs_in_seeded_folds():
    import pytest

    from facearith.errors import ConfigError

    counts = {(p, e): 1 + (i + j) % 3 for i, p in enumerate("ABCD") for j, e in enumerate(("HA", "SA", "SU", "NE"))}
    table = _pairs_table(counts)
    pair = list(zip(table.identity, table.attribute, strict=True))
    held_pairs = []
    for fold in range(4):
        train = splits.split(table, "pairs", seed=0, folds=4, fold=fold)
        assert train.dtype == bool
        trained = {p for p, t in zip(pair, train, strict=True) if t}
        held = {p for p, t in zip(pair, train, strict=True) if not t}
        assert not trained & held  # a pair is wholly trained or wholly held out: every one of its images
        assert len(held) == 4  # 16 pairs in 4 folds
        held_pairs.append(held)
    # the folds cover every pair exactly once
    assert sorted(p for h in held_pairs for p in h) == sorted(set(pair))
    assert list(splits.split(table, "pairs", seed=0, folds=4, fold=1)) == list(
        splits.split(table, "pairs", seed=0, folds=4, fold=1)
    )
    assert {tuple(splits.split(table, "pairs", seed=s, folds=4, fold=0)) for s in range(10)} != {
        tuple(splits.split(table, "pairs", seed=0, folds=4, fold=0))
    }
    with pytest.raises(ConfigError, match="prepare.fold is 4"):
        splits.split(table, "pairs", seed=0, folds=4, fold=4)
    with pytest.raises(ConfigError, match="prepare.folds is 17"):
        splits.split(table, "pairs", seed=0, folds=17, fold=0)


def test_images_are_resized_to_torchvisions_bytes_without_importing_it(jaffe_zip):
    """to_batch resizes with torch alone, so that stage linear need not import torchvision (2-3 s a process); the
    network's input must stay what torchvision's antialiased resize gave, byte for byte."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    from facearith.data import tensors

    with zipfile.ZipFile(jaffe_zip) as z:
        tiffs = sorted(n for n in z.namelist() if n.endswith(".tiff"))[::20]
        faces = [np.array(Image.open(io.BytesIO(z.read(n))).convert("L")) for n in tiffs]
    rng = np.random.default_rng(0)
    odd = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(48, 48), (100, 73), (31, 200)]]
    for img in faces + odd:
        t = torch.from_numpy(img)[None]
        for size in (32, 48, 96, 256):
            assert torch.equal(tensors.resize(t, size), TF.resize(t, [size, size], antialias=True)), (img.shape, size)
    batch = tensors.to_batch(odd, 32)
    assert batch.shape == (3, 1, 32, 32) and batch.dtype == torch.float32 and 0 <= batch.min() <= batch.max() <= 1
    code = "import sys; from facearith.features import linear; print('torchvision' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
