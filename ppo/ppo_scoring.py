"""The reward models PPO trains against, and the held-out reward that early stopping watches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.stage import COMPLETE_MARKER, run_dir
from reward.scoring import RewardScorer


def reward_model_dir(run_cfg, configured: str | None, objective: str) -> Path:
    """The configured RM folder, or the run's finished reward/<objective> stage; a clear error otherwise."""
    if configured:
        path = Path(configured).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{objective}_rm={configured}: no reward model (config.json) there")
        return path
    path = run_dir(run_cfg) / "reward" / objective
    if not (path / COMPLETE_MARKER).is_file():
        flag = " +experiment=safety" if objective == "safety" else ""
        raise FileNotFoundError(
            f"no finished {objective} reward model at {path}: run python reward/train.py{flag} first "
            f"(same run.name / run.root), or pass {objective}_rm=PATH"
        )
    return path


@dataclass
class RewardModels:
    """The helpfulness RM, and the safety RM for the safety experiment (None otherwise)."""

    helpful: RewardScorer
    safety: RewardScorer | None

    def score(
        self, dialogs: list[list[dict]], answers: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw scores (float32, CPU) of each RM for each (prompt dialog, answer text)."""
        helpful = self.helpful.score(dialogs, answers)
        safety = self.safety.score(dialogs, answers) if self.safety is not None else None
        return helpful, safety


def load_reward_models(cfg, encoder, device) -> tuple[RewardModels, dict[str, str]]:
    """The RMs the experiment needs, frozen on ``device``, and their folders (for metrics and the card)."""
    from transformers import AutoModelForSequenceClassification

    from ppo.ppo_models import freeze

    objectives = ["helpfulness"] + (["safety"] if cfg.experiment == "safety" else [])
    configured = {"helpfulness": cfg.helpfulness_rm, "safety": cfg.safety_rm}
    scorers, folders = {}, {}
    for objective in objectives:
        folder = reward_model_dir(cfg.run, configured[objective], objective)
        model = freeze(AutoModelForSequenceClassification.from_pretrained(str(folder))).to(device)
        scorers[objective] = RewardScorer(
            model, encoder, batch_size=cfg.train.score_batch_size, max_length=cfg.model.max_length
        )
        folders[objective] = str(folder)
    return RewardModels(scorers["helpfulness"], scorers.get("safety")), folders


@dataclass(frozen=True)
class EarlyStopping:
    """Best held-out reward so far and how many evaluations since it improved (immutable, checkpointed)."""

    best: float | None = None
    bad_evals: int = 0

    def update(self, value: float, min_delta: float) -> EarlyStopping:
        if self.best is None or value > self.best + min_delta:
            return EarlyStopping(best=value, bad_evals=0)
        return EarlyStopping(best=self.best, bad_evals=self.bad_evals + 1)

    def exhausted(self, patience: int) -> bool:
        return self.bad_evals >= patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_evals": self.bad_evals}
