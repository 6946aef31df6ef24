"""Structured configs shared by every stage.

Each stage's top-level config is a dataclass registered in Hydra's ConfigStore, so a typo'd key or a
wrong type fails at start with Hydra's message naming the key. The yaml files in `conf/` only choose
values; the schema lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class RunConfig:
    name: str = "default"
    root: str = "runs"
    seed: int = 0
    overwrite: bool = False  # redo a finished stage instead of stopping with a message


@dataclass
class ModelConfig:
    """Which base model: the built-in tiny Llama (path null) or a real checkpoint (local dir or hub id)."""

    name: str = "tiny"
    path: str | None = None
    tokenizer: str | None = None  # default: the checkpoint's own, or the built-in tiny tokenizer
    dtype: str = "float32"  # float32 | bfloat16 | float16 | auto
    attn_implementation: str = "sdpa"  # eager | sdpa | flash_attention_2
    gradient_checkpointing: bool = False
    # bf16 autocast when training a float32 model on a CPU with native bf16 (AVX512-BF16 / AMX); ignored
    # elsewhere. Off reproduces float32 training bit for bit.
    cpu_bf16_autocast: bool = True
    trust_remote_code: bool = False  # never on unless the user asks: it runs code from the checkpoint
    max_length: int = 1024  # longest training sequence, in tokens
    # Architecture of the tiny model (used only when path is null).
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention, as in Llama 2 70B
    intermediate_size: int = 688
    max_position_embeddings: int = 1024


@dataclass
class PeftConfig:
    method: str = "none"  # none | lora | qlora
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    merge_at_save: bool = True  # save a plain checkpoint (adapters folded in) rather than an adapter folder


@dataclass
class LoggerConfig:
    backend: str = "wandb"  # wandb | none
    project: str = "llama-rlhf"
    mode: str | None = None  # online | offline | disabled; default: offline when no API key is set


@dataclass
class DataConfig:
    """Where a stage's data comes from: the built-in world, or files / hub names read by chat.readers."""

    name: str = "builtin"
    seed: int = 0  # world seed (data=builtin)
    train: list[str] = field(default_factory=list)  # paths or hub names; empty for builtin
    test: list[str] = field(default_factory=list)
    format: str = "auto"  # auto | messages | hh_rlhf | preferences | prompts
    max_train_samples: int | None = None


# What an empty answer (the policy said EOS at once) scores on a reward model: the chat format has no empty
# assistant turn for a model to read, and this is below what the models give any real answer.
EMPTY_ANSWER_SCORE = -10.0


@dataclass
class RewardModelsConfig:
    """The reward models a stage scores answers with (rejection sampling, PPO, GAtt)."""

    helpfulness: str | None = None  # default: <run>/reward/helpfulness
    safety: str | None = None  # default: <run>/reward/safety (used with +experiment=safety)
    empty_answer_score: float = EMPTY_ANSWER_SCORE


@dataclass
class OracleEvalConfig:
    """`oracle.before` / `oracle.after`: sampled answers to the built-in world's held-out prompts, judged."""

    oracle: bool = True  # only with data=builtin; the oracle judges, it never trains anything
    max_prompts: int | None = 200  # null: all of prompts/test.jsonl
    # The policy's own distribution (temperature 1, as PPO samples), several answers a prompt so that rates
    # over the few dozen harmful prompts are not one coin flip each; temperature 0 judges greedy answers.
    temperature: float = 1.0
    samples_per_prompt: int = 4
    # The harmful requests, few and with small rates (null: samples_per_prompt).
    harmful_samples_per_prompt: int | None = None
    seed: int = 0
    max_new_tokens: int = 48
    batch_size: int = 32
    samples_in_table: int = 16


@dataclass
class StageConfig:
    """What every stage's config starts with: the run, the model (and adapters), the data, the logger.

    Each stage schema subclasses it and adds its own sections, so these keys mean the same everywhere and
    pipeline-wide overrides (`run.name=x logger=none`) apply to every stage.
    """

    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def model_at(model_cfg, path) -> object:
    """model.* pointing at a checkpoint: its own weights and tokenizer, the configured dtype and attention.

    A `model.tokenizer` set for the base must not override the tokenizer a checkpoint ships with, and the
    tiny architecture sizes are unused once a path is set.
    """
    from omegaconf import OmegaConf

    return OmegaConf.merge(model_cfg, {"path": str(path), "tokenizer": None})


__all__ = [
    "EMPTY_ANSWER_SCORE",
    "MISSING",
    "DataConfig",
    "LoggerConfig",
    "ModelConfig",
    "OracleEvalConfig",
    "RewardModelsConfig",
    "PeftConfig",
    "RunConfig",
    "StageConfig",
    "model_at",
]
