"""The reward rejection sampling ranks samples by: the helpfulness RM, or Llama 2's rule over both RMs.

With +experiment=safety the score is `ppo.rewards.combine_rewards`: the safety RM's score when the prompt
is tagged a safety prompt or the safety RM reads the answer as unsafe (sigmoid below 0.15), else the
helpfulness RM's. Scores stay raw (logit scale): ranking within a prompt is all selection needs.
"""

from __future__ import annotations

import logging

import torch

from ppo.rewards import combine_rewards
from reward.scoring import EMPTY_ANSWER_SCORE, reward_model_dir, score_answers

log = logging.getLogger(__name__)


class RewardRule:
    """Scores (prompt, answer) pairs with the helpfulness RM, or with both under Llama 2's rule."""

    def __init__(
        self, helpful, safety=None, threshold: float = 0.15, empty_score: float = EMPTY_ANSWER_SCORE
    ):
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
        scores = {"helpful": score_answers(self.helpful, prompts, answers, self.empty_score)}
        if self.safety is None:
            scores["reward"] = scores["helpful"]
        else:
            scores["safety"] = score_answers(self.safety, prompts, answers, self.empty_score)
            flags = torch.tensor(is_safety, dtype=torch.bool)
            # an empty answer scores empty_score on both RMs, so it counts as unsafe and keeps that score
            scores["reward"], scores["used_safety"] = combine_rewards(
                scores["helpful"], scores["safety"], flags, self.threshold
            )
        return {name: values.tolist() for name, values in scores.items()}


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
        path = reward_model_dir(cfg.run, cfg.reward[objective], objective, f"reward.{objective}")
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
