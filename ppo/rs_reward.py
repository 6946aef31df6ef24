"""The reward rejection sampling ranks samples by: the helpfulness RM, or Llama 2's rule over both RMs.

With +experiment=safety the score is `ppo.rewards.combine_rewards`: the safety RM's score when the prompt
is tagged a safety prompt or the safety RM reads the answer as unsafe (sigmoid below 0.15), else the
helpfulness RM's. Scores stay raw (logit scale): ranking within a prompt is all selection needs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from pipeline.stage import COMPLETE_MARKER, run_dir
from ppo.rewards import combine_rewards

log = logging.getLogger(__name__)


def reward_model_dir(run_cfg, configured: str | None, objective: str) -> Path:
    """The configured reward model, or the run's finished `reward/<objective>` stage; a clear error if absent."""
    path = Path(configured) if configured else run_dir(run_cfg) / "reward" / objective
    if configured is None and not (path / COMPLETE_MARKER).is_file():
        flag = " +experiment=safety" if objective == "safety" else ""
        raise FileNotFoundError(
            f"reward.{objective}: no finished {objective} reward model at {path}; train it first "
            f"(python reward/train.py run.name={run_cfg.name}{flag}) or set reward.{objective}=<dir>"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"reward.{objective}: {path} holds no model (no config.json)")
    return path


class RewardRule:
    """Scores (prompt, answer) pairs with the helpfulness RM, or with both under Llama 2's rule."""

    def __init__(self, helpful, safety=None, threshold: float = 0.15, empty_score: float = -10.0):
        self.helpful, self.safety, self.threshold = helpful, safety, threshold
        self.empty_score = empty_score

    def score(self, prompts: list[list[dict]], is_safety: list[bool], answers: list[str]) -> dict[str, list]:
        """{"reward": the ranking score, "helpful": R_h, and with two RMs "safety": R_s, "used_safety"}.

        An empty answer (the model said EOS at once) cannot be scored, since the chat format has no empty
        assistant turn: every score of it is `empty_score`, below anything an RM gives a real answer.
        """
        if not (len(prompts) == len(is_safety) == len(answers)):
            raise ValueError(
                f"{len(prompts)} prompts, {len(is_safety)} is_safety flags, {len(answers)} answers"
            )
        real = [i for i, answer in enumerate(answers) if answer.strip()]
        scores = {"helpful": self.helpful.score([prompts[i] for i in real], [answers[i] for i in real])}
        if self.safety is None:
            scores["reward"] = scores["helpful"]
        else:
            scores["safety"] = self.safety.score([prompts[i] for i in real], [answers[i] for i in real])
            flags = torch.tensor([is_safety[i] for i in real], dtype=torch.bool)
            scores["reward"], scores["used_safety"] = combine_rewards(
                scores["helpful"], scores["safety"], flags, self.threshold
            )
        return {
            name: scattered(values, real, len(answers), self.empty_score) for name, values in scores.items()
        }


def scattered(values: torch.Tensor, rows: list[int], size: int, fill: float) -> list:
    """`values` placed at `rows` of a list of `size`, the other rows `fill` (True for bool flags)."""
    out = [True if values.dtype == torch.bool else fill] * size
    for row, value in zip(rows, values.tolist(), strict=True):
        out[row] = value
    return out


def load_reward_rule(cfg) -> RewardRule:
    """The helpfulness RM, plus the safety RM when the experiment is safety."""
    from transformers import AutoModelForSequenceClassification

    from chat.format import ChatEncoder
    from reward.scoring import RewardScorer

    if cfg.experiment not in ("none", "safety"):
        raise ValueError(
            f"experiment: {cfg.experiment!r} is not known to rejection sampling (none or safety)"
        )

    def scorer(objective: str) -> RewardScorer:
        path = reward_model_dir(cfg.run, cfg.reward[objective], objective)
        log.info("%s reward model: %s", objective, path)
        model = AutoModelForSequenceClassification.from_pretrained(str(path))
        if torch.cuda.is_available():
            model = model.to("cuda")
        return RewardScorer(
            model,
            ChatEncoder.from_path(path),
            batch_size=cfg.reward.batch_size,
            max_length=cfg.reward.max_length,
        )

    safety = scorer("safety") if cfg.experiment == "safety" else None
    return RewardRule(
        scorer("helpfulness"), safety, cfg.reward.safety_threshold, cfg.reward.empty_answer_score
    )
