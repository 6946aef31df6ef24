"""The reward stage's config schema (defaults are the paper's; conf/reward_train/tiny.yaml tunes the tiny model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config import StageConfig

OBJECTIVES = {"none": "helpfulness", "safety": "safety"}  # experiment -> which reward model to train


@dataclass
class RewardTrainConfig:
    """Llama 2 appendix A.3.3: 1 epoch, max lr 1e-5 cosine down to 10%, warm-up 3% (>= 5 steps), 512 pairs a step."""

    margin: str = "small"  # none | small | large (paper table 27); a dataset's numeric margin column wins
    epochs: float = 1.0
    lr: float = 1e-5
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of lr
    weight_decay: float = 0.0  # not given in the paper
    warmup_ratio: float = 0.03
    min_warmup_steps: int = 5
    per_device_batch_size: int = 4  # pairs; each pair is two sequences
    pairs_per_step: int = 512  # across all processes; gradient accumulation is derived from it
    max_steps: int = -1  # > 0 caps training (smoke runs)
    max_pairs: int | None = None  # cap on the mixed (shuffled) training set; null / 0: all, as the paper
    max_curriculum_pairs: int | None = None  # cap on the curriculum (RewardCurriculumConfig); null / 0: all
    # Batches draw from rows of similar length, in bins this many tokens wide (0: fully random batches).
    length_bin_width: int = 16
    save_steps: int = 50
    logging_steps: int = 10


@dataclass
class MixComponent:
    """Extra preference data mixed into a reward model's training set.

    `sources` are paths / hub names for chat.readers, or `builtin:helpfulness` / `builtin:safety` for the
    built-in world's preference files. `share` is the fraction of the final training set it makes up: the
    primary data (data.train) is kept whole, as the paper keeps "all helpfulness data", and a component is
    subsampled to its share (all of it, with a warning, when it has fewer pairs).
    """

    name: str = "mix"
    sources: list[str] = field(default_factory=list)
    share: float = 0.1


@dataclass
class RewardMixConfig:
    """Per reward model, the components mixed into its primary data (Llama 2 section 3.2.2)."""

    helpfulness: list[MixComponent] = field(default_factory=list)
    safety: list[MixComponent] = field(default_factory=list)


@dataclass
class RewardCurriculumConfig:
    """Per reward model, pair sources trained on once before the mixture, in one sequential run (the same
    optimizer and learning-rate schedule). Same source forms as a mix component's. Not in the paper: the
    tiny helpfulness RM needs it to learn value checks at all (conf/reward.yaml says what was measured)."""

    helpfulness: list[str] = field(default_factory=list)
    safety: list[str] = field(default_factory=list)


@dataclass
class RewardEvalConfig:
    batch_size: int = 32
    max_pairs: int | None = None  # per test set; null / 0: all of them
    histogram_bins: int = 20
    unsafe_threshold: float = 0.15  # sigmoid(score) below it flags an answer unsafe (the PPO reward rule)
    baselines: bool = True  # length and bag-of-words baselines on the built-in world's test sets


@dataclass
class RewardConfig(StageConfig):
    train: RewardTrainConfig = field(default_factory=RewardTrainConfig)
    mix: RewardMixConfig = field(default_factory=RewardMixConfig)
    curriculum: RewardCurriculumConfig = field(default_factory=RewardCurriculumConfig)
    eval: RewardEvalConfig = field(default_factory=RewardEvalConfig)
    experiment: str = "none"  # none: the helpfulness RM; safety (+experiment=safety): the safety RM
    init_from: str | None = None  # default: the run's SFT checkpoint (<run.root>/<run.name>/sft)
    stage: str | None = None  # output folder within the run; default reward/helpfulness or reward/safety


def objective_of(experiment: str) -> str:
    """'helpfulness' or 'safety', the reward model an experiment trains; ValueError naming the key otherwise."""
    if experiment not in OBJECTIVES:
        raise ValueError(
            f"experiment: {experiment!r} has no reward model (expected one of {', '.join(OBJECTIVES)})"
        )
    return OBJECTIVES[experiment]


def check_pair_caps(cfg) -> None:
    """Refuse a negative pair cap by its key before anything runs (a slice would drop pairs from the end)."""
    caps = {
        "train.max_pairs": cfg.train.max_pairs,
        "train.max_curriculum_pairs": cfg.train.max_curriculum_pairs,
        "eval.max_pairs": cfg.eval.max_pairs,
    }
    for key, cap in caps.items():
        if cap is not None and cap < 0:
            raise ValueError(f"{key} must be >= 0 or null (null / 0: all pairs), got {cap}")


ConfigStore.instance().store(name="reward_schema", node=RewardConfig)
