import numpy as np

from facearith import arithmetic, evaluate, index


def _additive_set(persons=4, exprs=3, dim=16, seed=0):
    """Features that are exactly normalise(person part + expression part): composition must be perfect."""
    rng = np.random.default_rng(seed)
    pv, ev = rng.random((persons, dim)), rng.random((exprs, dim))
    ids, attrs, feats = [], [], []
    for i in range(persons):
        for j in range(exprs):
            ids.append(f"p{i}")
            attrs.append(f"e{j}")
            feats.append(arithmetic.normalize(pv[i] + ev[j]))
    return np.array(feats, dtype=np.float32), np.array(ids), np.array(attrs)


def test_normalize_clips_and_keeps_zero():
    v = arithmetic.normalize(np.array([[3.0, -1.0, 4.0], [0.0, 0.0, 0.0], [-1.0, -2.0, 0.0]]))
    assert np.allclose(v[0], [0.6, 0, 0.8])
    assert not np.isnan(v).any() and (v[1:] == 0).all()


def test_label_vectors_are_normalised_medians():
    feats = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]], dtype=np.float32)
    vecs = arithmetic.label_vectors(feats, np.array(["a", "a", "b"]))
    assert np.allclose(vecs["a"], [1, 0]) and np.allclose(vecs["b"], [0, 1])


def test_ngt_matches_exact_search(tmp_path):
    rng = np.random.default_rng(0)
    vecs = arithmetic.normalize(rng.random((200, 32)))
    index.build(vecs, tmp_path / "idx")
    ngt, exact = index.NGTSearcher(tmp_path / "idx"), index.ExactSearcher(vecs)
    q = vecs[:20]
    ids_n, d_n = ngt.search(q, 5)
    ids_e, d_e = exact.search(q, 5)
    assert (ids_n[:, 0] == np.arange(20)).all() and (ids_e[:, 0] == np.arange(20)).all()
    assert (ids_n == ids_e).mean() > 0.95
    assert np.allclose(d_n, d_e, atol=1e-4)
    assert len(ngt) == 200


def test_composition_on_an_additive_set_is_perfect(tmp_path):
    feats, ids, attrs = _additive_set()
    index.build(feats, tmp_path / "idx")
    pairs = evaluate.all_pairs(ids, attrs)
    assert len(pairs) == 12
    for searcher in (index.NGTSearcher(tmp_path / "idx"), index.ExactSearcher(feats)):
        result = evaluate.composition(searcher, feats, ids, attrs, pairs, k=5)
        assert result == {"top1": 1.0, "top5": 1.0, "queries": 12}


def test_composition_counts_misses():
    feats, ids, attrs = _additive_set()
    wrong = attrs.copy()
    wrong[[0, 1]] = wrong[[1, 0]]  # the indexed labels of two items are swapped: those two queries miss at rank 1
    result = evaluate.composition(index.ExactSearcher(feats), feats, ids, wrong, evaluate.all_pairs(ids, wrong), k=1)
    assert result["top1"] == 10 / 12


def test_seed_pairs_are_fixed_by_the_seed():
    _, ids, attrs = _additive_set()
    a = evaluate.seed_pairs(ids, attrs, 100, seed=0)
    assert a == evaluate.seed_pairs(ids, attrs, 100, seed=0) and len(a) == 100
    assert a != evaluate.seed_pairs(ids, attrs, 100, seed=1)
    assert set(a) <= set(evaluate.all_pairs(ids, attrs))


def test_missing_index_is_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(index.IndexMissingError, match="dvc repro index"):
        index.NGTSearcher(tmp_path)
