"""The Ghost Attention stages' config schema (Llama 2 section 3.3): synthesis, fine-tune, evaluation.

One config (conf/gatt.yaml) serves the three commands, so a run's synthesis, training and evaluation agree
on the model, data and seed. Defaults are tuned for the tiny model on the built-in world (each command
within minutes on 2 CPU cores); `conf/gatt_train/llama2-*.yaml` carry the paper's SFT values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config import StageConfig
from ppo.sampling_config import RSRewardConfig
from sft.config import SFTTrainConfig


@dataclass
class GattSynthesisConfig:
    # Constraint lists: a folder of <family>.json files (format: chatworld/constraints/*.json).
    # null: the built-in world's gatt/constraints/ (data=builtin) or the shipped chatworld/constraints/.
    constraints: str | None = None
    families: list[str] = field(default_factory=lambda: ["style", "hobby", "figure"])
    combine_p: float = 0.2  # chance that a dialog's instruction combines two families (paper: random combos)
    short_p: float = 0.5  # chance of the shortened form ("Figure: X"; the paper: half the time)
    # Unconstrained multi-turn dialogs to attach instructions to; empty: the built-in world's gatt/dialogs.jsonl.
    dialogs: list[str] = field(default_factory=list)
    max_dialogs: int | None = 100  # of the source dialogs (the built-in world has 300)
    max_turns: int | None = None  # cap the turns sampled per dialog (cost grows with turns squared)
    k: int = 4  # samples per turn; the reward model keeps the best (as in rejection sampling)
    temperature: float = 0.3  # low: GATT_NOTES item 2 (samples at T 0.7 taught the model to drift)
    top_p: float = 1.0
    max_new_tokens: int = 48
    batch_size: int = 64  # sequences decoded together (dialogs x k)
    dialogs_per_write: int = 32  # sampled dialogs are appended to disk after every this many
    # On the built-in world, samples that break the constraint (the oracle's check) are dropped before the
    # reward model picks; a turn where none is left keeps the RM's pick for the dialog to go on, untrained
    # (GATT_NOTES item 2). The oracle filters data here; it never ranks samples.
    oracle_filter: bool = True
    require_finished: bool = True  # an answer cut at max_new_tokens is never picked (it would teach cut-offs)
    cut_points: int = 8  # training examples per synthesized dialog, each ending at a different turn
    replay_share: float = 0.25  # share of the fine-tune rows that are base SFT dialogs (GATT_NOTES item 1)


@dataclass
class GattEvalConfig:
    # Of the 20-turn evaluation dialogs (gatt/eval.jsonl, 120; every 4th has held-out values): 64 (48 with
    # trained values) keep both models within minutes on 2 cores; a share near 90% is then known to about
    # +-8 points (95%).
    max_dialogs: int | None = 64
    turns: list[int] = field(default_factory=lambda: list(range(1, 21)))  # judged turns (plot: all)
    max_new_tokens: int = 48
    batch_size: int = 64
    neutral_prompts: int = 100  # prompts/test.jsonl answers checked for a constraint nobody asked for
    attention_dialog: int = 0  # which evaluation dialog the attention figure shows
    attention_turns: int = 20
    attention_dialogs: int = 16  # GAtt-model transcripts (trained values) the per-turn peak is averaged over


@dataclass
class GattConfig(StageConfig):
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    reward: RSRewardConfig = field(default_factory=RSRewardConfig)
    synthesis: GattSynthesisConfig = field(default_factory=GattSynthesisConfig)
    eval: GattEvalConfig = field(default_factory=GattEvalConfig)
    experiment: str = "none"  # none: helpfulness RM picks samples; safety: Llama 2's rule over both RMs
    init_from: str | None = None  # the policy to sample from and fine-tune; default: the run's latest
    train_data: str | None = (
        None  # a GAtt dataset (train.jsonl) to fine-tune on; default: the run's gatt-data
    )


ConfigStore.instance().store(name="gatt_schema", node=GattConfig)
