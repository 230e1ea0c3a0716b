import numpy as np
import pytest
import torch

from facearith.training.losses import triplet_loss
from facearith.training.triplets import (
    BY_ATTRIBUTE,
    BY_IDENTITY,
    block_batches,
    block_triplets,
    epoch_batches,
    sample_triplets,
)


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


def test_blocks_cover_every_image_once_with_both_kinds_in_each_block():
    ids, attrs = _grid(10, 7)  # JAFFE's shape, one image per pair
    rng = np.random.default_rng(0)
    for _ in range(5):
        blocks = block_batches(ids, attrs, rng, 16)
        assert sorted(np.concatenate(blocks)) == list(range(70))
        # 10 persons in groups 4/3/3, 7 expressions in groups 4/3: six blocks of 9 to 16 images
        assert sorted(len(b) for b in blocks) == [9, 9, 12, 12, 12, 16]
        for b in blocks:
            persons, exprs = set(ids[b]), set(attrs[b])
            assert len(persons) >= 2 and len(exprs) >= 2 and len(b) == len(persons) * len(exprs)


def test_blocks_change_between_epochs_and_repeat_for_a_seed():
    ids, attrs = _grid(10, 7)
    one = [b.tolist() for b in block_batches(ids, attrs, np.random.default_rng(1), 16)]
    again = [b.tolist() for b in block_batches(ids, attrs, np.random.default_rng(1), 16)]
    rng = np.random.default_rng(1)
    block_batches(ids, attrs, rng, 16)
    next_epoch = [b.tolist() for b in block_batches(ids, attrs, rng, 16)]
    assert one == again and one != next_epoch


def test_blocks_hold_about_batch_size_images_with_several_per_pair():
    ids, attrs = np.repeat(_grid(10, 7)[0], 3), np.repeat(_grid(10, 7)[1], 3)  # 3 images per pair
    blocks = block_batches(ids, attrs, np.random.default_rng(0), 16)
    assert sorted(np.concatenate(blocks)) == list(range(210))
    assert all(12 <= len(b) <= 24 for b in blocks)  # 2 persons x 2-3 expressions x 3 images


def test_block_triplets_are_all_the_valid_ones():
    # persons a, a, b, b x expressions x, y, x, y: the smallest block with both kinds
    ids, attrs = np.array(["a", "a", "b", "b"]), np.array(["x", "y", "x", "y"])
    rows = block_triplets(ids, attrs)
    got = {tuple(r) for r in rows.tolist()}
    assert len(got) == len(rows) == 16
    expected = set()
    for kind, labels in ((BY_IDENTITY, ids), (BY_ATTRIBUTE, attrs)):
        for a in range(4):
            for p in range(4):
                for n in range(4):
                    if p != a and labels[p] == labels[a] and labels[n] != labels[a]:
                        expected.add((a, p, n, kind))
    assert got == expected
    assert (0, 1, 2, BY_IDENTITY) in got and (0, 2, 1, BY_ATTRIBUTE) in got


def test_epoch_batches_of_the_seeds_kind_forward_anchors_positives_negatives():
    ids, attrs = _grid(4, 3)
    plan = epoch_batches("triplets", ids, attrs, np.random.default_rng(0), 5)
    assert [len(order) for order, _ in plan] == [15, 15, 6]
    anchors = np.concatenate([order[: len(rows)] for order, rows in plan])
    assert sorted(anchors) == list(range(12))
    for order, rows in plan:
        for a, p, n, kind in rows:
            labels = ids if kind == BY_IDENTITY else attrs
            assert labels[order[a]] == labels[order[p]] and labels[order[a]] != labels[order[n]]
    with pytest.raises(ValueError, match="unknown sampler 'pairs'"):
        epoch_batches("pairs", ids, attrs, np.random.default_rng(0), 5)


def test_triplet_loss_on_known_vectors():
    # 2-d vectors: the identity triplet (0, 1, 2) is satisfied beyond the margin, the attribute one (0, 2, 1) is not
    v = torch.tensor([[0.0, 0.0], [0.1, 0.0], [3.0, 0.0]])
    out = {"identity": v, "attribute": v}
    rows = torch.tensor([[0, 1, 2, BY_IDENTITY], [0, 2, 1, BY_ATTRIBUTE]])
    eps = 1e-6  # TripletMarginLoss's pairwise_distance adds it
    expected = (0.0 + (np.hypot(3.0 + eps, eps) - np.hypot(0.1 + eps, eps) + 1.0)) / 2
    assert triplet_loss(out, rows, margin=1.0).item() == pytest.approx(expected, abs=1e-5)
    assert triplet_loss(out, rows[:1], margin=1.0).item() == 0.0
