import numpy as np
import pytest

from facearith.triplets import BY_ATTRIBUTE, BY_IDENTITY, sample_triplets


def _grid(persons=4, exprs=3):
    ids = np.repeat([f"p{i}" for i in range(persons)], exprs)
    attrs = np.tile([f"e{j}" for j in range(exprs)], persons)
    return ids, attrs


def test_triplets_follow_their_kind():
    ids, attrs = _grid()
    rows = sample_triplets(ids, attrs, np.random.default_rng(0))
    assert rows.shape == (12, 4)
    assert (rows[:, 0] == np.arange(12)).all()
    assert (rows[:, 1] != rows[:, 0]).all()
    for a, p, n, kind in rows:
        labels = ids if kind == BY_IDENTITY else attrs
        assert labels[a] == labels[p] and labels[a] != labels[n]


def test_kinds_are_about_half_and_half():
    ids, attrs = _grid(10, 7)
    rng = np.random.default_rng(0)
    kinds = np.concatenate([sample_triplets(ids, attrs, rng)[:, 3] for _ in range(20)])
    assert 0.45 < (kinds == BY_ATTRIBUTE).mean() < 0.55


def test_seeded_sampling_repeats():
    ids, attrs = _grid()
    a = sample_triplets(ids, attrs, np.random.default_rng(3))
    b = sample_triplets(ids, attrs, np.random.default_rng(3))
    assert (a == b).all()


def test_single_person_or_expression_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 persons"):
        sample_triplets(np.array(["a", "a"]), np.array(["x", "y"]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2 expressions"):
        sample_triplets(np.array(["a", "b"]), np.array(["x", "x"]), np.random.default_rng(0))


def test_a_person_with_a_single_image_still_gets_valid_triplets():
    ids = np.array(["a", "a", "b", "b", "c"])  # c has one image: no positive shares its person
    attrs = np.array(["x", "y", "x", "y", "x"])
    for seed in range(20):
        rows = sample_triplets(ids, attrs, np.random.default_rng(seed))
        a, p, n, kind = rows[4]
        assert kind == BY_ATTRIBUTE and attrs[p] == "x" and p != 4 and attrs[n] != "x"
