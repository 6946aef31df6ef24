"""The SFT stage's config schema (defaults are the paper's; conf/sft_train/tiny.yaml tunes the tiny model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config import (
    OracleEvalConfig,
    StageConfig,
)


@dataclass
class SFTTrainConfig:
    epochs: float = 2.0
    lr: float = 2e-5
    weight_decay: float = 0.1
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    per_device_batch_size: int = 4
    sequences_per_step: int = 64  # across all processes; gradient accumulation is derived from it
    max_steps: int = -1  # > 0 caps training (smoke runs)
    # length_buckets (ours: random batches within coarse length buckets, so one-turn dialogs are not padded
    # to twenty turns) | random | group_by_length | batch_rebalance. Not group_by_length: in templated data,
    # equal lengths mean one task per batch, and a tiny model then never learns to tell the tasks apart
    # (built-in world, 400 steps: oracle helpfulness per task 0.0-0.46 length-grouped, 0.29-1.0 random).
    sampling: str = "length_buckets"
    packing: bool = False  # concatenate dialogs into full-length rows (the paper's choice)
    # Each micro-batch becomes one row without padding; position ids restart per dialog, so attention stays
    # within each dialog (exact with sdpa on CPU too; tests/test_sft_batching.py). Length buckets save no padding
    # there, so pair it with sampling=random.
    padding_free: bool = False
    save_steps: int = 50
    eval_steps: int = 100
    logging_steps: int = 10


@dataclass
class DistillConfig:
    """Safety context distillation (+experiment=safety, Llama 2 section 4.2.4)."""

    prompts: list[str] = field(
        default_factory=list
    )  # prompt sets with is_safety; builtin: the world's train prompts
    safety_rm: str | None = None  # default: the run's reward/safety
    adjectives: list[str] = field(
        default_factory=lambda: ["safe", "responsible", "respectful", "wise", "careful", "honest", "ethical"]
    )
    max_prompts: int = 600
    max_new_tokens: int = 48
    temperature: float = 0.0
    batch_size: int = 32
    seed: int = 0
    # Fine-tuning an already trained policy on a few hundred answers: gentler than SFT from the base.
    lr: float = 1e-4
    epochs: float = 2.0


@dataclass
class SFTConfig(StageConfig):
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    eval: OracleEvalConfig = field(default_factory=OracleEvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    experiment: str = "none"  # none | safety (+experiment=safety: safety context distillation)
    init_from: str | None = (
        None  # a checkpoint to start from instead of model (safety: the run's newest policy)
    )
    stage: str | None = (
        None  # output folder within the run; default sft, or sft-safety with +experiment=safety
    )


ConfigStore.instance().store(name="sft_schema", node=SFTConfig)
