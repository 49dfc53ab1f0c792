import pytest

from swagbench.bench.config import RunConfig, load_config, parse_backends
from swagbench.bench.errors import ConfigError


def test_embedded_default():
    cfg = load_config()
    assert cfg == RunConfig()
    assert cfg.ensemble.folds == 5 and cfg.ensemble.samples == 4 and cfg.ensemble.scale == 0.5
    assert cfg.data.source == "mnist" and cfg.model == "resnet8" and cfg.train.max_rank == 20
    labels = [t.label for t in cfg.trials]
    assert labels[:2] == ["eager-fp32", "eager-bf16-cl"]
    assert labels[-1] == "openvino-int8-bnauto-binding='auto'"  # BatchNorm from the subset the run's ladder chooses
    assert {(t.backend, t.precision) for t in cfg.trials if t.precision == "int8"} == {
        ("onnxruntime", "int8"),
        ("openvino", "int8"),
    }
    assert {t.backend for t in cfg.trials} == {"eager", "torchscript", "inductor", "onnxruntime", "openvino"}


def test_yaml_backends_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nensemble: {samples: 3}\ntrain: {epochs: 4, swa_start: 2}\n")
    cfg = load_config(path, ["ensemble.samples=2", "data.noise_rate=0.1"], "eager,eager:bf16:cl")
    # layered: the YAML's samples (3) overridden by key=value (2); its train settings kept; --backends the trials
    assert cfg.name == "x" and cfg.ensemble.samples == 2 and cfg.data.noise_rate == 0.1 and cfg.train.epochs == 4
    assert cfg.train.swa_start == 2 and cfg.ensemble.folds == RunConfig().ensemble.folds
    assert [t.label for t in cfg.trials] == ["eager-fp32", "eager-bf16-cl"]
    with pytest.raises(ConfigError, match="trials"):  # a key=value into the trials list is refused, not ignored
        load_config(path, ["trials.bogus=1"], "eager")


@pytest.mark.parametrize(
    "overrides, msg",
    [
        (["ensemble.sample=4"], r"unknown key\(s\) \['sample'\] in ensemble; valid keys: .*samples"),
        (["ensemble.samples=two"], "ensemble.samples must be int"),
        (["ensemble.samples=0"], "samples must be >= 1"),
        (["ensemble.folds=1"], "folds must be >= 2"),
        (["data.noise_rate=1.5"], "noise_rate must be in"),
        (["cleanlab.filter_by=magic"], "filter_by 'magic' is not one of"),
        (["train.swa_start=50"], "swa_start must be in"),
        (["trials=[]"], "no trials configured"),
        (["samples"], "is not key=value"),
        (["ensemble.diag_only=1"], "must be bool"),
    ],
)
def test_bad_config_is_one_clear_error(overrides, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(None, overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_parse_backends():
    assert parse_backends("eager, eager:bf16,eager:fp32:cl") == [
        {"backend": "eager"},
        {"backend": "eager", "precision": "bf16"},
        {"backend": "eager", "precision": "fp32", "channels_last": True},
    ]
    with pytest.raises(ConfigError, match="cannot read 'fp64'"):
        parse_backends("eager:fp64")
    with pytest.raises(ConfigError, match="duplicate trials"):
        load_config(None, None, "eager,eager")
