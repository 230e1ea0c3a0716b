import copy
import dataclasses

import pytest
import yaml

from facearith import config, settings
from facearith.errors import ConfigError

from .conftest import ROOT

COMMITTED = yaml.safe_load((ROOT / "params.yaml").read_text())


def _with(path: str, value):
    raw = copy.deepcopy(COMMITTED)
    *head, last = path.split(".")
    node = raw
    for key in head:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


_DELETE = object()


def test_committed_params_are_valid_and_typed():
    params = config.validate(COMMITTED)
    assert params.train.epochs == COMMITTED["train"]["epochs"]
    assert params.train.augment.crop_scale == tuple(COMMITTED["train"]["augment"]["crop_scale"])
    assert dataclasses.is_dataclass(params.model) and params.model.embedding == COMMITTED["model"]["embedding"]
    assert settings.as_dict(params) == COMMITTED  # every key, no more, values as written
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.epochs = 3


def test_nothing_is_filled_in():
    for path in ("train.lr", "train.augment.hflip", "index", "data.jaffe.sha256"):
        with pytest.raises(ConfigError, match=rf"'{path}' is missing from .*; every key must be set"):
            config.validate(_with(path, _DELETE))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("train.epoch", 3, "unknown key 'train.epoch'"),
        ("trian", {}, "unknown key 'trian'"),
        ("train.epochs", -1, "'train.epochs' is -1; it must be 0 or more"),
        ("train.epochs", "ten", "'train.epochs' must be an integer"),
        ("train.lr", True, "'train.lr' must be a number"),
        ("train.lr", 0, "'train.lr' must be greater than 0"),
        ("train.image_size", 16, "'train.image_size' is 16"),
        ("data.source", "imagenet", "'data.source' is 'imagenet'; allowed: synthetic, jaffe"),
        ("model.arch", "resnet50", "'model.arch' is 'resnet50'"),
        ("train.device", "tpu", "'train.device' is 'tpu'"),
        ("model.members", 0, "'model.members' is 0; it must be at least 1 network"),
        ("model.width", 0, "'model.width' is 0.0; it must be above 0 and at most 4"),
        ("model.width", "half", "'model.width' must be a number"),
        ("train.sampler", "pairs", "'train.sampler' is 'pairs'; allowed: blocks, triplets"),
        ("train.schedule", "step", "'train.schedule' is 'step'; allowed: constant, cosine"),
        ("train.swa_from", 1.0, "'train.swa_from' is 1.0; it must be 0 (off) or a fraction of the epochs below 1"),
        ("train.swa_from", -0.5, "'train.swa_from' is -0.5"),
        ("train.label_smoothing", 1.0, "'train.label_smoothing' is 1.0; it must be 0 (off) or a fraction below 1"),
        ("train.label_smoothing", -0.1, "'train.label_smoothing' is -0.1"),
        ("train.weight_decay", -0.1, "'train.weight_decay' is -0.1; it must be 0 or more"),
        ("train.augment.crop_scale", [0.9, 0.5], "'train.augment.crop_scale'"),
        ("train.augment.jitter", [0.1], "'train.augment.jitter' must be a list of 4 numbers"),
        ("features.fuse_weight.identity", 1.5, "'features.fuse_weight.identity' is 1.5; it must be between 0 and 1"),
        ("features.fuse_weight.attribute", -0.2, "'features.fuse_weight.attribute' is -0.2"),
        ("features.fuse_weight", 0.2, "'features.fuse_weight' must be a mapping with keys ['identity', 'attribute']"),
        ("features.fuse", "auto", "'features.fuse' is 'auto'; allowed: inner, fixed"),
        ("features.fuse_steps", 0, "'features.fuse_steps' is 0; it must be at least 1"),
        ("features.fuse_folds", 0, "'features.fuse_folds' is 0; it must be at least 1"),
        # final.start inner continues stage fuse's inner network, which fixed weights do not train
        ("features.fuse", "fixed", "'final.start' is inner (continue stage fuse's inner network), but 'features.fuse'"),
        ("final.start", "warm", "'final.start' is 'warm'; allowed: inner, scratch"),
        ("final.epochs", 0, "'final.epochs' is 0; it must be at least 1"),
        ("linear.size", 2, "'linear.size' is 2; it must be at least 4 (pixels a side)"),
        ("data", "jaffe", "'data' must be a mapping"),
    ],
)
def test_bad_params_name_the_key(path, value, message):
    with pytest.raises(ConfigError) as err:
        config.validate(_with(path, value))
    assert message in str(err.value)


def test_imagenet_weights_need_the_width_they_were_trained_at():
    raw = _with("model.width", 0.5)
    raw["model"]["pretrained"] = True
    with pytest.raises(ConfigError, match="'model.width' is 0.5, but ImageNet weights exist for width 1 only"):
        config.validate(raw)


def test_inner_folds_of_pairs_are_at_most_prepare_folds():
    raw = _with("features.fuse_folds", 6)
    config.validate(raw)  # images split: each inner fold is another draw, as many as asked
    raw["prepare"] |= {"split": "pairs", "folds": 5}
    with pytest.raises(ConfigError, match="'features.fuse_folds' is 6, but with prepare.split pairs .* at most 5"):
        config.validate(raw)
    raw["features"]["fuse_folds"] = 5
    config.validate(raw)


def test_load_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
