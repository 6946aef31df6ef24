"""The reward models PPO trains against, and the held-out reward that early stopping watches."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from ppo.ppo_models import unwrap_peft
from ppo.rollout import pack_rows, pack_sequences
from reward.scoring import EMPTY_ANSWER_SCORE, RewardScorer, reward_model_dir, score_answers


def shared_prefix_lengths(sequences: list[list[int]], keys: list[str]) -> list[int]:
    """Per sequence, how many of its first tokens it shares with every sequence of the same key (a prompt's
    answers share the prompt, and any opening words they have in common), leaving each at least its last
    token of its own (the one the reward head reads)."""
    members: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    lengths = [0] * len(sequences)
    for group in members.values():
        shortest = min(len(sequences[i]) for i in group)
        common = 0
        while common < shortest - 1 and len({sequences[i][common] for i in group}) == 1:
            common += 1
        for i in group:
            lengths[i] = common
    return lengths


class SharedPromptScorer(RewardScorer):
    """A RewardScorer whose forwards compute each prompt once for all its answers (ppo.rollout.PackedRows),
    instead of once per answer in a padded batch: PPO scores several samples of each prompt, and the built-in
    world's prompts are most of each sequence. The scores are the same (to float rounding)."""

    @torch.no_grad()
    def score(self, prompts: list[list[dict]], answers: list[str]) -> torch.Tensor:
        sequences = self.encode(prompts, answers)
        keys = [json.dumps(prompt, sort_keys=True) for prompt in prompts]
        base = unwrap_peft(self.model)
        backbone = getattr(base, base.base_model_prefix)
        scores = torch.empty(len(sequences), dtype=torch.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(sequences), self.batch_size):
                part = sequences[start : start + self.batch_size]
                shared = shared_prefix_lengths(part, keys[start : start + self.batch_size])
                batch = pack_sequences(
                    [s[:k] for s, k in zip(part, shared)],
                    [s[k:] for s, k in zip(part, shared)],
                    self.pad_id,
                    self.encoder.eos_id,
                ).to(self.device)
                packed = pack_rows(batch)
                hidden = backbone(
                    input_ids=packed.input_ids,
                    attention_mask=packed.attention_mask,
                    position_ids=packed.position_ids,
                    use_cache=False,
                ).last_hidden_state
                # Each sequence's last token (its EOS), where the head reads the score.
                last = packed.unpack(packed.answer_at).gather(1, batch.response_mask.sum(1, keepdim=True) - 1)
                head = base.score(hidden.flatten(0, 1)[last.squeeze(1)]).squeeze(-1)
                scores[start : start + len(part)] = head.float().cpu()
        finally:
            self.model.train(was_training)
        return scores


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
        scorers[objective] = SharedPromptScorer(
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
