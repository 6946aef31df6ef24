"""Structured configs: every stage config composes, and typos or wrong types fail naming the key."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import sft.config  # noqa: F401  (registers the schema)

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def compose_sft(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config_name="sft", overrides=list(overrides))


def test_sft_defaults_are_the_tiny_world():
    cfg = compose_sft()
    assert cfg.model.name == "tiny" and cfg.model.path is None
    assert cfg.data.name == "builtin" and cfg.peft.method == "none"
    assert cfg.run.name == "default" and cfg.run.root == "runs"


@pytest.mark.parametrize("size", ["7b", "13b", "70b"])
def test_real_models_get_the_papers_sft_values(size):
    cfg = compose_sft(f"model=llama2-{size}", "model.path=/ckpt/x")
    assert cfg.model.path == "/ckpt/x" and cfg.model.max_length == 4096
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.epochs) == (2e-5, 0.1, 2)
    assert cfg.train.lr_scheduler == "cosine" and cfg.train.sequences_per_step == 64


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.lrr=1", "train.lrr"),
        ("model.hiden_size=3", "model.hiden_size"),
        ("train.epochs=two", "train.epochs"),
        ("peft.r=x", "peft.r"),
        ("run.nmae=x", "run.nmae"),
    ],
)
def test_typos_and_wrong_types_fail_naming_the_key(override, named):
    with pytest.raises(ConfigCompositionException) as error:
        compose_sft(override)
    assert named in str(error.value) + str(error.value.__cause__)


def test_unknown_group_option_fails():
    with pytest.raises(ConfigCompositionException, match="model"):
        compose_sft("model=llama3")
