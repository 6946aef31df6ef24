"""The SFT stage's config schema (defaults are the paper's; conf/sft_train/tiny.yaml tunes the tiny model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config import DataConfig, LoggerConfig, ModelConfig, PeftConfig, RunConfig


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
    # group_by_length batches dialogs of similar length: the same random epoch with ~3x less padding
    # on the built-in world's mix of 1- and 20-turn dialogs (random | group_by_length | batch_rebalance).
    sampling: str = "group_by_length"
    packing: bool = False  # concatenate dialogs into full-length rows (the paper's choice)
    padding_free: bool = False  # one row per batch with no padding (needs flash attention for exact masking)
    save_steps: int = 50
    eval_steps: int = 100
    logging_steps: int = 10


@dataclass
class SFTEvalConfig:
    oracle: bool = True  # oracle.before / oracle.after on the built-in world's held-out prompts
    max_prompts: int = 200
    max_new_tokens: int = 48
    batch_size: int = 32
    samples_in_table: int = 16


@dataclass
class SFTConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    eval: SFTEvalConfig = field(default_factory=SFTEvalConfig)
    experiment: str = "none"  # none | safety (+experiment=safety: safety context distillation)
    init_from: str | None = None  # a checkpoint to start from instead of model (e.g. another run's stage)
    stage: str = "sft"  # output folder name within the run


ConfigStore.instance().store(name="sft_schema", node=SFTConfig)
