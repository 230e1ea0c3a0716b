import hashlib

import numpy as np

from facearith.data import images, labels, synthetic

from .conftest import PATTERN


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_generate_is_deterministic_and_named_like_jaffe(tmp_path):
    a = synthetic.generate(tmp_path / "a", persons=3, images_per_pair=2, size=48, seed=1)
    b = synthetic.generate(tmp_path / "b", persons=3, images_per_pair=2, size=48, seed=1)
    assert a == b and len(a) == 3 * 7 * 2
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    table, skipped = labels.build_table(tmp_path / "a", PATTERN)
    assert skipped == []
    assert table.identity.nunique() == 3
    assert sorted(table.attribute.unique()) == list(synthetic.EXPRESSIONS)
    assert table.groupby(["identity", "attribute"]).size().eq(2).all()
    c = synthetic.generate(tmp_path / "c", persons=3, images_per_pair=2, size=48, seed=2)
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a") and len(c) == len(a)


def test_person_codes_never_look_like_expressions():
    codes = synthetic.person_codes(50)
    assert len(set(codes)) == 50
    assert not set(codes) & set(synthetic.EXPRESSIONS)


def test_each_image_has_its_own_nuisance(tmp_path):
    synthetic.generate(tmp_path, persons=1, images_per_pair=2, size=64, seed=0)
    first, second = (images.load_gray(p) for p in sorted(tmp_path.glob("*.AN*.tiff")))
    # the same person and expression drawn twice still differ (pose, light, noise)
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 5


def test_nuisance_scales_how_much_two_draws_of_a_pair_differ(tmp_path):
    def spread(nuisance):
        folder = tmp_path / str(nuisance)
        synthetic.generate(folder, persons=2, images_per_pair=2, size=64, seed=0, nuisance=nuisance)
        diffs = []
        for pair in {p.name.split(".")[0] + "." + p.name.split(".")[1][:2] for p in folder.iterdir()}:
            a, b = (images.load_gray(p).astype(int) for p in sorted(folder.glob(f"{pair}*.tiff")))
            diffs.append(np.abs(a - b).mean())
        return float(np.mean(diffs))

    # with no nuisance only the expression's strength varies between draws: nearly the same picture
    assert spread(0.0) < 3 < spread(0.5) < spread(1.0)
