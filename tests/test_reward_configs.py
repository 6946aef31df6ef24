"""The reward stage's config: defaults, the paper's values for real models, typos failing at start."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import reward.config  # noqa: F401  (registers the schema)
from pipeline.processes import accumulation_steps
from reward.config import objective_of
from reward.train import optimizer_steps, warmup_steps

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def compose_reward(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config_name="reward", overrides=list(overrides))


def test_defaults_train_the_helpfulness_rm_on_the_tiny_world():
    cfg = compose_reward()
    assert cfg.model.name == "tiny" and cfg.data.name == "builtin" and cfg.train.margin == "small"
    assert objective_of(cfg.experiment) == "helpfulness" and cfg.init_from is None
    assert [c.sources for c in cfg.mix.helpfulness] == [["builtin:safety"], ["builtin:contrast"]]
    assert [c.sources for c in cfg.mix.safety] == [["builtin:helpfulness"], ["builtin:safety-contrast"]]
    assert list(cfg.curriculum.helpfulness) == ["builtin:contrast-plain"] and not cfg.curriculum.safety
    assert objective_of(compose_reward("+experiment=safety").experiment) == "safety"
    with pytest.raises(ValueError, match="experiment"):
        objective_of("gatt")


@pytest.mark.parametrize("size, lr", [("7b", 1e-5), ("13b", 1e-5), ("70b", 5e-6)])
def test_real_models_get_the_papers_reward_values(size, lr):
    cfg = compose_reward(f"model=llama2-{size}", "model.path=/ckpt/x")
    train = cfg.train
    assert (train.epochs, train.lr, train.min_lr_ratio, train.pairs_per_step) == (1, lr, 0.1, 512)
    assert (train.warmup_ratio, train.min_warmup_steps, train.margin) == (0.03, 5, "small")
    assert train.max_pairs is None  # all the data, as the paper


def test_warmup_is_3_percent_of_steps_and_at_least_5():
    assert warmup_steps(1000, 0.03, 5) == 30
    assert warmup_steps(100, 0.03, 5) == 5
    assert warmup_steps(3, 0.03, 5) == 3  # never longer than training
    assert optimizer_steps(rows=1025, pairs_per_step=512, max_steps=-1) == 3
    assert optimizer_steps(rows=1025, pairs_per_step=512, max_steps=7) == 7


def test_accumulation_makes_up_the_papers_batch_across_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert accumulation_steps(512, 4, "train.pairs_per_step") == 16  # 512 pairs = 8 GPUs x 4 x 16
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert accumulation_steps(512, 4, "train.pairs_per_step") == 128
    assert accumulation_steps(3, 4, "train.pairs_per_step") == 1  # never below one pass


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.margn=small", "train.margn"),
        ("train.lr=fast", "train.lr"),
        ("eval.unsafe_treshold=0.2", "eval.unsafe_treshold"),
        ("mix.helpfulnes=[]", "mix.helpfulnes"),
        ("curriculum.helpfulnes=[]", "curriculum.helpfulnes"),
        ("init_form=/x", "init_form"),
    ],
)
def test_typos_and_wrong_types_fail_naming_the_key(override, named):
    with pytest.raises(ConfigCompositionException) as error:
        compose_reward(override)
    assert named in str(error.value) + str(error.value.__cause__)


def test_unknown_margin_table_is_refused():
    from reward.losses import margin_table

    cfg = compose_reward("train.margin=huge")  # a free string in the schema: checked at start by the stage
    with pytest.raises(ValueError, match="train.margin"):
        margin_table(cfg.train.margin)


def test_an_unknown_builtin_pair_set_is_refused_naming_the_known_ones():
    from reward.data import resolve_sources

    cfg = compose_reward()
    with pytest.raises(ValueError, match=r"builtin:contrast-plian: unknown .*contrast-plain"):
        resolve_sources(
            ["builtin:contrast-plian"], cfg.run, cfg.data, "train"
        )  # checked before the world is built


@pytest.mark.parametrize("key", ["train.max_pairs", "train.max_curriculum_pairs", "eval.max_pairs"])
def test_a_negative_pair_cap_is_refused_by_its_key(key):
    from reward.config import check_pair_caps

    check_pair_caps(compose_reward(f"{key}=0"))  # 0 and null: all pairs
    with pytest.raises(ValueError, match=key.replace(".", r"\.") + " must be >= 0"):
        check_pair_caps(compose_reward(f"{key}=-3"))
