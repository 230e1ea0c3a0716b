"""The PCA + LDA baseline on hand-made data whose answers are known."""

import numpy as np
import pytest

from facearith.arithmetic import normalize
from facearith.data import synthetic
from facearith.data.images import load_images
from facearith.data.labels import build_table
from facearith.evaluation import protocols
from facearith.features import extract, linear
from facearith.search import exact

from .conftest import PATTERN


def _faces(rng, n_id=5, n_attr=4, per_pair=4, dim=120, nuisance=20.0):
    """x = identity code + attribute code + a strong random nuisance in a few shared directions + noise."""
    ident_code = rng.normal(size=(n_id, dim))
    attr_code = rng.normal(size=(n_attr, dim))
    nuisance_dirs = rng.normal(size=(3, dim))
    rows, ids, attrs = [], [], []
    for i in range(n_id):
        for a in range(n_attr):
            for _ in range(per_pair):
                shake = rng.normal(size=3) * nuisance
                rows.append(ident_code[i] + attr_code[a] + shake @ nuisance_dirs + rng.normal(size=dim) * 0.1)
                ids.append(f"p{i}")
                attrs.append(f"e{a}")
    return np.array(rows), np.array(ids), np.array(attrs)


def _scores(feats, ids, attrs):
    """Composition and transfer top-1 among the held-out (last per pair) rows, label vectors from them too."""
    held = np.arange(len(ids)) % 4 == 3
    idx = protocols.Indexed(feats[held], ids[held], attrs[held], exact.ExactSearcher(feats[held]))
    comp = protocols.composition_records(idx, protocols.all_pairs(ids[held], attrs[held]), 1).top1.mean()
    n = int(held.sum())
    tran = protocols.transfer_records(idx, feats[held], ids[held], attrs[held], np.arange(n), depth=1).top1.mean()
    return comp, tran


def test_lda_removes_a_strong_nuisance_and_composes_held_out_rows():
    x, ids, attrs = _faces(np.random.default_rng(0))
    fit_rows = np.arange(len(ids)) % 4 != 3  # three of four images per pair train; the fourth is held out
    size, scores = linear.choose_pca_size(x[fit_rows], ids[fit_rows], attrs[fit_rows])
    assert size in scores and scores[size] == max(scores.values()) and scores[size] > 0.95
    model = linear.fit(x[fit_rows], ids[fit_rows], attrs[fit_rows], size, 32)
    assert model.identity.shape[1] == 4 and model.attribute.shape[1] == 3  # classes - 1 directions each
    feats = model.transform(x)
    assert feats.min() >= 0 and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    assert _scores(feats, ids, attrs) == (1.0, 1.0)
    # the same rows as raw vectors: the nuisance dominates and arithmetic fails
    raw_comp, raw_tran = _scores(normalize(np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], 1)), ids, attrs)
    assert raw_comp < 0.6 and raw_tran < 0.6


def _fitted_on(images, ids, attrs, rows, size=32):
    """Every image's features from PCA + LDA fitted on the `rows` (a mask) only, as stage linear fits it."""
    at = np.flatnonzero(rows)
    model, _ = linear.fit_images([images[i] for i in at], ids[at], attrs[at], size)
    return model.embed(images)


def test_the_baseline_is_fitted_on_the_training_images_only(tmp_path):
    synthetic.generate(tmp_path, persons=3, images_per_pair=3, size=48, seed=0)
    table, _ = build_table(tmp_path, PATTERN)
    images = load_images(table.path.tolist())
    fit_rows = (table.repeat == 1).to_numpy()
    ids, attrs = table.identity.to_numpy(), table.attribute.to_numpy()
    a = _fitted_on(images, ids, attrs, fit_rows)
    noisy = [img if keep else np.random.default_rng(i).integers(0, 255, img.shape, dtype=np.uint8)
             for i, (img, keep) in enumerate(zip(images, fit_rows, strict=True))]  # fmt: skip
    b = _fitted_on(noisy, ids, attrs, fit_rows)
    assert np.array_equal(a[fit_rows], b[fit_rows])  # held-out images changed nothing in the fitted model
    assert not np.array_equal(a[~fit_rows], b[~fit_rows])
    assert a.shape == (63, 2 * (2 + 6))  # (persons - 1) + (expressions - 1) directions, each split by sign


def test_pca_sizes_leave_lda_room():
    x, ids, attrs = _faces(np.random.default_rng(1), per_pair=2)
    size, scores = linear.choose_pca_size(x, ids, attrs, folds=5)
    # 40 images, folds of 8: 32 to fit, 5 identities -> at most 27 components
    assert max(scores) <= 27 and size == max(scores, key=scores.get)
    assert linear.choose_pca_size(x, ids, attrs, folds=5) == (size, scores)  # seeded


def test_fusion_ranks_by_the_weighted_sum_of_both_cosines_and_fixes_what_each_alone_gets_wrong():
    # four items, 0 and 1 alike, 2 and 3 alike; the first system misplaces 2, the second misplaces 0
    a = normalize(np.array([[3.0, 3], [3, 4], [2, 5], [0, 5]]))
    b = normalize(np.array([[5.0, 5], [2, 4], [5, 1], [3, 2]]))
    fused = extract.fuse([(a, 0.5), (b, 0.5)])
    assert fused.dtype == np.float32 and np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-6)
    # a fused search ranks by weight x the first cosine + (1 - weight) x the second
    np.testing.assert_allclose(fused @ fused.T, 0.5 * a @ a.T + 0.5 * b @ b.T, atol=1e-6)
    f = extract.fuse([(a, 0.2), (b, 0.8)])
    np.testing.assert_allclose(f @ f.T, 0.2 * a @ a.T + 0.8 * b @ b.T, atol=1e-6)
    assert np.array_equal(extract.fuse([(a, 1.0), (b, 0.0)]), a.astype(np.float32))  # a block of weight 0 is left out
    assert np.array_equal(extract.fuse([(a, 0.0), (b, 1.0)]), b.astype(np.float32))

    def nearest(f: np.ndarray, q: int) -> int:
        s = f @ f[q]
        s[q] = -np.inf
        return int(np.argmax(s))

    assert (nearest(a, 0), nearest(a, 2)) == (1, 1)
    assert (nearest(b, 0), nearest(b, 2)) == (3, 3)
    assert (nearest(fused, 0), nearest(fused, 2)) == (1, 3)


def test_fusion_refuses_mismatched_rows_and_weights():
    a, b = np.ones((3, 2)) / np.sqrt(2), np.ones((4, 2)) / np.sqrt(2)
    with pytest.raises(ValueError, match=r"different numbers of rows: \[3, 4\]"):
        extract.fuse([(a, 0.5), (b, 0.5)])
    with pytest.raises(ValueError, match="must be 0 or more and sum to 1"):
        extract.fuse([(a, 1.2), (a, -0.2)])
    with pytest.raises(ValueError, match="must be 0 or more and sum to 1"):
        extract.fuse([(a, 0.5), (a, 0.2)])


def test_the_axes_are_the_features_halves_each_unit_length():
    x, ids, attrs = _faces(np.random.default_rng(2), per_pair=2)
    model = linear.fit(x, ids, attrs, 16, 32)
    identity, attribute = model.axes(x)
    assert np.allclose(np.linalg.norm(identity, axis=1), 1) and np.allclose(np.linalg.norm(attribute, axis=1), 1)
    # positive and negative parts of each LDA projection: identities - 1 and attributes - 1 directions, twice
    assert identity.shape[1] == 2 * (len(set(ids)) - 1) and attribute.shape[1] == 2 * (len(set(attrs)) - 1)
    np.testing.assert_allclose(model.transform(x), np.concatenate([identity, attribute], 1) / np.sqrt(2), atol=1e-6)


def test_a_saved_model_embeds_new_images_as_the_fitted_one_and_bad_files_say_what_to_do(tmp_path):
    synthetic.generate(tmp_path / "raw", persons=3, images_per_pair=3, size=48, seed=0)
    table, _ = build_table(tmp_path / "raw", PATTERN)
    images = load_images(table.path.tolist())
    fit_rows = np.flatnonzero((table.repeat == 1).to_numpy())
    model, scores = linear.fit_images(
        [images[i] for i in fit_rows], table.identity[fit_rows], table.attribute[fit_rows], 24
    )
    assert model.size == 24 and model.pca.shape == (24 * 24, max(scores, key=scores.get))
    path = tmp_path / "linear.npz"
    linear.save(model, path)
    assert [p.name for p in tmp_path.iterdir() if p.name != "raw"] == ["linear.npz"]  # no temporary left
    back = linear.load(path)
    assert back.size == 24 and isinstance(back.size, int)
    np.testing.assert_array_equal(back.embed(images), model.embed(images))
    # the same as fitting on those rows afresh
    ids, attrs = table.identity.to_numpy(), table.attribute.to_numpy()
    mask = (table.repeat == 1).to_numpy()
    np.testing.assert_array_equal(back.embed(images), _fitted_on(images, ids, attrs, mask, 24))
    with pytest.raises(linear.ModelError, match=r"missing\.npz not found; run `dvc repro linear`"):
        linear.load(tmp_path / "missing.npz")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(linear.ModelError, match=r"linear\.npz is not a readable PCA \+ LDA model"):
        linear.load(path)
    with pytest.raises(ValueError, match="no training images"):
        linear.fit_images([], [], [], 32)
