"""Judges: something that scores (prompt, answer) pairs, higher is better.

The reward models judge as in the paper; on the built-in world the oracle judges too, as a check on
Goodhart effects (a policy tuned against an RM can win by that RM's score without being better).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Judge = Callable[[list[list[dict]], list[str]], list[float]]
REWARD_MODELS = {"helpfulness_rm": "reward/helpfulness", "safety_rm": "reward/safety"}


def on_accelerator(model):
    """On the GPU when there is one (judging a few hundred answers on a CPU is fine for the tiny model)."""
    import torch

    return model.to("cuda") if torch.cuda.is_available() else model


def reward_model_judge(folder: Path, batch_size: int) -> Judge:
    from transformers import AutoModelForSequenceClassification

    from chat.format import ChatEncoder
    from reward.scoring import RewardScorer, score_answers

    model = on_accelerator(AutoModelForSequenceClassification.from_pretrained(str(folder)))
    scorer = RewardScorer(model, ChatEncoder.from_path(folder), batch_size=batch_size)
    # a sampled answer can be empty (EOS at once): it loses to any real answer instead of stopping the stage
    return lambda prompts, answers: score_answers(scorer, prompts, answers).tolist()


def oracle_judge(prompts: list[list[dict]], answers: list[str]) -> list[float]:
    """The world's oracle: helpfulness, which for harmful requests is its safety score (refusal wins)."""
    from chatworld import oracle

    return [oracle.helpfulness(p, a) for p, a in zip(prompts, answers)]


def available_judges(run: Path, with_oracle: bool, batch_size: int) -> dict[str, Judge]:
    """Every finished reward model of the run, plus the oracle when asked; an error when there is none."""
    judges = {
        name: reward_model_judge(Path(run) / stage, batch_size)
        for name, stage in REWARD_MODELS.items()
        if (Path(run) / stage / "metrics.json").is_file()
    }
    if with_oracle:
        judges["oracle"] = oracle_judge
    if not judges:
        raise FileNotFoundError(
            f"no judge for {run}: no finished reward model (reward/helpfulness, reward/safety) and no oracle "
            "(only on data=builtin)"
        )
    return judges
