"""The reward models PPO trains against, and the held-out reward that early stopping watches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reward.scoring import EMPTY_ANSWER_SCORE, RewardScorer, reward_model_dir, score_answers


@dataclass
class RewardModels:
    """The helpfulness RM, and the safety RM for the safety experiment (None otherwise)."""

    helpful: RewardScorer
    safety: RewardScorer | None
    empty_score: float = EMPTY_ANSWER_SCORE  # what an empty answer (EOS at once) gets from each RM

    def score(
        self, dialogs: list[list[dict]], answers: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw scores (float32, CPU) of each RM for each (prompt dialog, answer text)."""
        helpful = score_answers(self.helpful, dialogs, answers, self.empty_score)
        if self.safety is None:
            return helpful, None
        return helpful, score_answers(self.safety, dialogs, answers, self.empty_score)


def load_reward_models(cfg, encoder, device) -> tuple[RewardModels, dict[str, str]]:
    """The RMs the experiment needs, frozen on ``device``, and their folders (for metrics and the card)."""
    from transformers import AutoModelForSequenceClassification

    from ppo.ppo_models import freeze

    objectives = ["helpfulness"] + (["safety"] if cfg.experiment == "safety" else [])
    scorers, folders = {}, {}
    for objective in objectives:
        folder = reward_model_dir(cfg.run, cfg.reward[objective], objective, f"reward.{objective}")
        model = freeze(AutoModelForSequenceClassification.from_pretrained(str(folder))).to(device)
        scorers[objective] = RewardScorer(
            model, encoder, batch_size=cfg.train.score_batch_size, max_length=cfg.model.max_length
        )
        folders[objective] = str(folder)
    models = RewardModels(scorers["helpfulness"], scorers.get("safety"), cfg.reward.empty_answer_score)
    return models, folders


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
