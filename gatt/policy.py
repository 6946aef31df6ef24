"""Which policy GAtt starts from: init_from, else the run's newest model stage before GAtt."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from pipeline.config import model_at
from pipeline.stage import find_policy, run_dir


def latest_policy(cfg) -> Path:
    if cfg.init_from:
        return Path(cfg.init_from)
    policy = find_policy(cfg.run, before="gatt")
    if policy is None:
        raise FileNotFoundError(
            f"no finished policy in {run_dir(cfg.run)} (sft, rejection sampling or ppo); "
            "run python sft/train.py first or set init_from"
        )
    return policy


def policy_model_cfg(cfg, policy, **overrides):
    """The model config pointing at a checkpoint (dtype, attention etc. as configured unless overridden)."""
    return OmegaConf.merge(model_at(cfg.model, policy), overrides)
