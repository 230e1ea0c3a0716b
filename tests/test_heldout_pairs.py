import json
import subprocess
from collections import Counter

import yaml

from facearith.heldout import fold_of_pairs

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
    assert out["composition"]["queries"] == 21  # every pair once, each from the fold that held it out
    # each held-out pair (p, e) is reached from those of p's other pairs that its fold trained on
    pairs = [(p, e) for p in ("BC", "BG", "BJ") for e in ("AN", "DI", "FE", "HA", "NE", "SA", "SU")]
    fold = fold_of_pairs(pairs, 3, seed=0)
    expected = sum(1 for (p, e) in pairs for (q, f) in pairs if q == p and f != e and fold[(q, f)] != fold[(p, e)])
    assert out["transfer"]["queries"] == expected
    assert 0 <= out["composition"]["top1"] <= 1
