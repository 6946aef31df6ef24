"""The win-rate evaluation's config schema (conf/winrate.yaml chooses the values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config import StageConfig


@dataclass
class WinRateEvalConfig:
    prompts: list[str] = field(default_factory=list)  # held-out prompt sets; default: the data's test split
    max_prompts: int = 200
    max_new_tokens: int = 48
    # Sampled as the stages' oracle evaluation samples (greedy answers of nearby models are mostly identical,
    # so nearly every comparison was a tie); the fixed seed makes every model draw the same way. 0: greedy.
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 32  # generation
    score_batch_size: int = 16  # reward models
    tie_tolerance: float = 1e-6  # |score A - score B| <= this is a tie (counted as half a win)
    oracle: bool = True  # judge with the oracle too (data=builtin only)


@dataclass
class WinRateConfig(StageConfig):
    # Of the shared keys only model.dtype and model.attn_implementation are used (the checkpoints come from
    # the run); they are there so that the pipeline's overrides shared by every stage apply here too.
    eval: WinRateEvalConfig = field(default_factory=WinRateEvalConfig)
    stage: str = "winrate"  # output folder within the run


ConfigStore.instance().store(name="winrate_schema", node=WinRateConfig)
