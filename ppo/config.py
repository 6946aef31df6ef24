"""The PPO stage's config schema (defaults are the paper's; conf/ppo_train/tiny.yaml tunes the tiny model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pipeline.config import (
    OracleEvalConfig,
    RewardModelsConfig,
    StageConfig,
)

EXPERIMENTS = {"none": "ppo", "safety": "ppo-safety"}  # experiment -> output folder within the run
VALUE_INITS = ("reward", "policy")
WHITEN_MODES = ("running", "batch")
BASELINES = ("none", "prompt_mean")
LAYOUTS = ("auto", "packed", "padded")


@dataclass
class PPOTrainConfig:
    """Llama 2 section 3.2.3: AdamW (0.9, 0.95), eps 1e-5, wd 0.1, clip 1.0, constant lr 1e-6, 512 prompts
    per iteration, mini-batch 64, one gradient step per mini-batch, clip 0.2, beta 0.01 (0.005 for 70B)."""

    iterations: int = 300  # the paper ran 200-400
    prompts_per_iteration: int = 512
    samples_per_prompt: int = 1  # answers sampled per prompt: a batch has prompts_per_iteration x this rows
    # none: the paper's reward | prompt_mean: each score minus the mean over its prompt's samples (needs
    # samples_per_prompt >= 2), before whitening, so that the advantage compares answers to one prompt
    baseline: str = "none"
    mini_batch_size: int = 64  # rows; one optimizer step per mini-batch
    micro_batch_size: int = 8  # rows per forward/backward; gradients accumulate up to a mini-batch
    # A forward's rows (micro_batch_size of them; the rollout forwards run that many at a time too) packed end to
    # end into as few rows as hold the longest (packed), padded, or (auto) packed where that saves rows.
    layout: str = "auto"
    ppo_epochs: int = 1
    lr: float = 1e-6
    value_lr: float | None = None  # null: the same as lr
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-5
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    clip: float = 0.2  # policy ratio clip
    value_clip: float | None = 0.2  # value clip around the rollout-time values; null: plain squared error
    gamma: float = 1.0
    lam: float = 0.95
    kl_beta: float = 0.01
    kl_estimator: str = "k1"  # k1 | k3 (ppo.rewards.kl_penalty)
    # KL(policy || reference) in nats per answer (summed over its tokens): beyond it the run stops.
    kl_max: float = 20.0
    whiten: str = "running"  # running: statistics over every batch so far (checkpointed) | batch
    safety_threshold: float = 0.15  # R_c takes the safety RM where sigmoid(R_s) is below it
    no_eos_penalty: float | None = None  # taken off answers that never emitted EOS (raw score units)
    no_eos_mode: str = "subtract"  # subtract | replace (ppo.rewards.shaping)
    length_penalty: float = 0.0  # per response token, raw score units
    max_new_tokens: int = 128  # not given in the paper
    temperature: float = 1.0  # not given in the paper
    top_p: float = 1.0
    # reward: the value model starts from the helpfulness RM | policy: from the starting policy, with a new head
    value_init: str = "reward"
    generation_backend: str = "auto"  # auto | hf | vllm (generation.make_generator)
    generation_batch_size: int = 64
    score_batch_size: int = 32
    save_every: int = 1  # iterations between checkpoints (the last iteration is always kept)
    keep_checkpoints: int = 2
    samples_in_table: int = 8


@dataclass
class PPOPromptConfig:
    """Which prompts PPO trains on. Plain PPO (helpfulness RM alone) leaves safety-tagged prompts out: the
    helpfulness RM would reward complying with harmful requests. The safety experiment mixes them in."""

    # +experiment=safety: share of safety-tagged prompts in each iteration (0.5: what the tiny safety settings
    # of conf/ppo_train/tiny.yaml were measured with; 0.3 was not tried with them)
    safety_share: float = 0.5
    heldout: int = 64  # training prompts set aside for early stopping (never trained on)
    max_prompts: int | None = None  # cap on the training prompts read (smoke runs)


@dataclass
class PPOEarlyStopConfig:
    """Early stopping on held-out prompts: the mean combined RM reward of greedy answers, every few iterations."""

    every: int = 10  # iterations between held-out evaluations; 0 turns early stopping off
    patience: int = 3  # evaluations without improvement before stopping
    min_delta: float = 0.0
    max_new_tokens: int = 64


@dataclass
class PPOOracleEvalConfig(OracleEvalConfig):
    """PPO's oracle evaluations: `oracle.before` / `oracle.after` as every stage's, plus the curve's points
    during training (at each held-out evaluation, so that reward over-optimization shows)."""

    # The curve's points only show a trend; oracle.before / oracle.after carry the verdict with the full
    # samples_per_prompt. 2 instead of 8 made each point ~4x cheaper (see README, "What the default run gives").
    curve_samples_per_prompt: int = 2


@dataclass
class PPOConfig(StageConfig):
    train: PPOTrainConfig = field(default_factory=PPOTrainConfig)
    prompts: PPOPromptConfig = field(default_factory=PPOPromptConfig)
    early_stop: PPOEarlyStopConfig = field(default_factory=PPOEarlyStopConfig)
    eval: PPOOracleEvalConfig = field(default_factory=PPOOracleEvalConfig)
    experiment: str = "none"  # none: helpfulness RM | safety: both RMs under the Llama 2 rule
    init_from: str | None = None  # the policy to start from; default: the run's newest policy stage
    reward: RewardModelsConfig = field(default_factory=RewardModelsConfig)
    stage: str | None = None  # output folder within the run; default ppo or ppo-safety


def stage_of(experiment: str) -> str:
    """'ppo' or 'ppo-safety'; ValueError naming the key for an unknown experiment."""
    if experiment not in EXPERIMENTS:
        raise ValueError(
            f"experiment: {experiment!r} has no PPO variant (expected one of {', '.join(EXPERIMENTS)})"
        )
    return EXPERIMENTS[experiment]


def check_train_config(train) -> None:
    """Raise naming the key for settings the trainer cannot honour (before any model is loaded)."""
    if train.samples_per_prompt < 1:
        raise ValueError(f"train.samples_per_prompt must be >= 1, got {train.samples_per_prompt}")
    if train.baseline not in BASELINES:
        raise ValueError(f"train.baseline: {train.baseline!r} (expected one of {', '.join(BASELINES)})")
    if train.baseline == "prompt_mean" and train.samples_per_prompt < 2:
        raise ValueError(
            "train.baseline=prompt_mean compares a prompt's answers: set train.samples_per_prompt >= 2"
        )
    rows = train.prompts_per_iteration * train.samples_per_prompt
    if rows % train.mini_batch_size:
        raise ValueError(
            f"train.prompts_per_iteration x train.samples_per_prompt = {rows} rows is not a multiple of "
            f"train.mini_batch_size={train.mini_batch_size}"
        )
    if train.mini_batch_size % train.micro_batch_size:
        raise ValueError(
            f"train.mini_batch_size={train.mini_batch_size} is not a multiple of "
            f"train.micro_batch_size={train.micro_batch_size}"
        )
    if train.value_init not in VALUE_INITS:
        raise ValueError(f"train.value_init: {train.value_init!r} (expected one of {', '.join(VALUE_INITS)})")
    if train.layout not in LAYOUTS:
        raise ValueError(f"train.layout: {train.layout!r} (expected one of {', '.join(LAYOUTS)})")
    if train.whiten not in WHITEN_MODES:
        raise ValueError(f"train.whiten: {train.whiten!r} (expected one of {', '.join(WHITEN_MODES)})")
    if train.kl_max <= 0:
        raise ValueError(f"train.kl_max must be positive, got {train.kl_max}")
    if train.iterations < 1 or train.save_every < 1:
        raise ValueError("train.iterations and train.save_every must be >= 1")


def check_attention_for_layout(train, model) -> None:
    """Packed rows share a prompt among its samples through a 4-D attention mask, which flash_attention_2 does
    not take: raise naming the keys rather than let it attend across answers."""
    shares = train.samples_per_prompt > 1 and train.layout != "padded"
    if shares and model.attn_implementation == "flash_attention_2":
        raise ValueError(
            f"train.layout={train.layout} with train.samples_per_prompt={train.samples_per_prompt} shares each "
            "prompt among its samples through a 4-D attention mask, which model.attn_implementation="
            "flash_attention_2 does not take: set model.attn_implementation=sdpa or train.layout=padded"
        )


def by_experiment(plain, safety, *, _root_):
    """``${by_experiment:A,B}`` in a PPO config reads A for plain PPO and B for +experiment=safety: a default
    that differs between the two runs. An override on the command line replaces the whole expression."""
    choice = {"none": plain, "safety": safety}
    if _root_.experiment not in choice:
        stage_of(_root_.experiment)  # raises naming the key
    return choice[_root_.experiment]


OmegaConf.register_new_resolver("by_experiment", by_experiment, replace=True)
ConfigStore.instance().store(name="ppo_schema", node=PPOConfig)
