import json
import subprocess
from collections import Counter

import yaml

from facearith.data import fold_of_pairs

from .conftest import ROOT, stage_cmd
from .test_pipeline import TINY, _merge
from .test_robustness import ENV


def test_every_pair_is_held_out_exactly_once():
    pairs = [(f"p{i}", f"e{j}") for i in range(10) for j in range(7)]
    fold = fold_of_pairs(pairs, 5, seed=0)
    assert set(fold) == set(pairs)
    assert sorted(Counter(fold.values()).values()) == [14] * 5
    assert fold == fold_of_pairs(pairs, 5, seed=0) and fold != fold_of_pairs(pairs, 5, seed=1)


def test_stage_reports_zero_shot_composition(tmp_path):
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), _merge(TINY, {"heldout_pairs": {"folds": 3}}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("data", "prepare", "heldout_pairs"):
        proc = subprocess.run(stage_cmd(stage), cwd=tmp_path, env=ENV, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "metrics/heldout_pairs.json").read_text())["heldout_pairs"]
    assert out["folds"] == 3
    # every pair once, each from the fold that held it out; one whose expression (or person) lost every trained
    # image in that fold has no label vector and cannot be asked
    assert out["composition"]["queries"] + out["composition"]["unanswerable"] == 21
    assert out["composition"]["queries"] > 0
    # each held-out pair (p, e) is reached from those of p's other pairs that its fold trained on
    pairs = [(p, e) for p in ("BC", "BG", "BJ") for e in ("AN", "DI", "FE", "HA", "NE", "SA", "SU")]
    fold = fold_of_pairs(pairs, 3, seed=0)

    # (only where the target expression kept a trained image in that fold: its label vector comes from those)
    def askable(p, e):
        return any(fold[(r, e)] != fold[(p, e)] for r in ("BC", "BG", "BJ"))

    expected = sum(
        1
        for (p, e) in pairs
        for (q, f) in pairs
        if q == p and f != e and fold[(q, f)] != fold[(p, e)] and askable(p, e)
    )
    assert out["transfer"]["queries"] == expected
    assert 0 <= out["composition"]["top1"] <= 1
    # the network alone beside the indexed features (the network with PCA + LDA), on the same queries
    assert {k: v["queries"] for k, v in out["network"].items()} == {k: out[k]["queries"] for k in out["network"]}


def test_label_vectors_of_a_held_out_pair_come_from_trained_pairs_only():
    import numpy as np

    from facearith import evaluate, index

    # four one-hot images, one per pair; (A, x) is held out. Its own image would pull v(A) and v(x) towards it.
    feats = np.eye(4, dtype=np.float32)
    ident, attr = np.array(["A", "A", "B", "B"]), np.array(["x", "y", "x", "y"])
    searcher = index.ExactSearcher(feats)
    leaky = evaluate.Indexed(feats, ident, attr, searcher)
    assert evaluate.composition_records(leaky, [("A", "x")], 1).top1.tolist() == [True]  # found through the leak
    trained = np.array([False, True, True, True])
    fair = evaluate.Indexed(feats, ident, attr, searcher, vectors_from=trained)
    v_id, v_attr = fair.vectors()
    assert np.allclose(v_id["A"], [0, 1, 0, 0]) and np.allclose(v_attr["x"], [0, 0, 1, 0])
    assert evaluate.composition_records(fair, [("A", "x")], 1).top1.tolist() == [False]
