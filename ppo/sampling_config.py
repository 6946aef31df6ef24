"""The rejection-sampling stage's config schema (Llama 2 section 3.2.3).

Sampling defaults are tuned for the tiny model on the built-in world (the whole command in minutes on
2 CPU cores); `conf/rs_train/llama2-*.yaml` carry the paper's fine-tuning values, and the paper's K and
temperature are given in conf/rejection_sampling.yaml's comments (K up to 100, T 1.2-1.3 for RLHF models).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config import (
    OracleEvalConfig,
    RewardModelsConfig,
    StageConfig,
)
from sft.config import SFTTrainConfig


@dataclass
class RSSamplingConfig:
    k: int = 4  # samples per prompt (the paper sweeps 1..100)
    temperature: float = (
        1.0  # re-tune each iteration with the sweep mode; the paper found 1.2-1.3 best late on
    )
    top_p: float = 1.0
    max_new_tokens: int = 48
    max_prompts: int | None = 600  # per iteration; null: the whole prompt set
    batch_size: int = 64  # sequences decoded together (prompts x k)
    prompts_per_write: int = 32  # samples are appended to disk after every this many prompts
    backend: str = "auto"  # auto | hf | vllm (auto: vLLM when installed with a GPU)
    require_finished: bool = (
        True  # pick the best among answers that ended with EOS (a cut-off one teaches cut-offs)
    )


@dataclass
class RSRewardConfig(RewardModelsConfig):
    safety_threshold: float = 0.15  # Llama 2's rule: the safety RM wins when sigmoid(R_s) is below it
    batch_size: int = 32
    max_length: int | None = None  # default: the reward model's max_position_embeddings


@dataclass
class RSSweepConfig:
    """The temperature sweep (paper figure 8): max reward vs N per temperature, no fine-tuning."""

    enabled: bool = False
    temperatures: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0, 1.2, 1.4])
    max_prompts: int = 64


@dataclass
class RejectionSamplingConfig(StageConfig):
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    eval: OracleEvalConfig = field(default_factory=OracleEvalConfig)
    sampling: RSSamplingConfig = field(default_factory=RSSamplingConfig)
    reward: RSRewardConfig = field(default_factory=RSRewardConfig)
    sweep: RSSweepConfig = field(default_factory=RSSweepConfig)
    iteration: int = 1  # writes <run>/rejection_sampling/iter-<iteration>/
    experiment: str = "none"  # none: helpfulness RM; safety: Llama 2's rule over both RMs
    init_from: str | None = None  # the policy to sample from; default: iter-(k-1), or the run's SFT for k=1


ConfigStore.instance().store(name="rejection_sampling_schema", node=RejectionSamplingConfig)
