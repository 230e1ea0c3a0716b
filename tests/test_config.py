import pytest
import yaml

from facearith import config
from facearith.config import ConfigError

from .conftest import ROOT


def test_committed_params_are_valid_and_complete():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = config.validate(raw)
    assert params == config.validate(params)

    # every default key is spelled out in params.yaml, so `dvc exp show` lists them all
    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(raw) == keys(config.DEFAULTS)


def test_defaults_fill_missing_keys():
    params = config.validate({"train": {"epochs": 3}})
    assert params["train"]["epochs"] == 3
    assert params["train"]["lr"] == config.DEFAULTS["train"]["lr"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epoch": 3}}, "unknown key 'train.epoch'"),
        ({"trian": {}}, "unknown key 'trian'"),
        ({"train": {"epochs": -1}}, "'train.epochs' is -1; it must be 0 or more"),
        ({"train": {"epochs": "ten"}}, "'train.epochs' must be an integer"),
        ({"train": {"lr": True}}, "'train.lr' must be a number"),
        ({"train": {"image_size": 16}}, "'train.image_size' is 16"),
        ({"data": {"source": "imagenet"}}, "'data.source' is 'imagenet'; allowed: synthetic, jaffe"),
        ({"model": {"arch": "resnet50"}}, "'model.arch' is 'resnet50'"),
        ({"train": {"device": "tpu"}}, "'train.device' is 'tpu'"),
        ({"train": {"sampler": "pairs"}}, "'train.sampler' is 'pairs'; allowed: blocks, triplets"),
        ({"train": {"weight_decay": -0.1}}, "'train.weight_decay' must be 0 or more"),
        ({"train": {"augment": {"crop_scale": [0.9, 0.5]}}}, "'train.augment.crop_scale'"),
        ({"train": {"augment": {"jitter": [0.1]}}}, "'train.augment.jitter' must be a list of 4 numbers"),
        ({"data": "jaffe"}, "'data' must be a mapping"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        config.validate(raw)
    assert message in str(err.value)


def test_load_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
