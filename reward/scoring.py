"""Batched scoring with a trained reward model: score(prompt dialogs, answers) -> raw rewards.

Used by evaluation here and by the later stages (rejection sampling, PPO, safety distillation). Sequences
are encoded exactly as in training (reward/encoding.py), sorted by length so that each batch carries
little padding, right-padded with the model's pad id, and scored in eval mode without gradients. The
score is read at the EOS: the pad id is never EOS (see `reward_pad_id`), so the last non-pad token the
head looks for is the EOS itself, whatever the padding of the batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from chat.format import ChatEncoder
from pipeline.config import EMPTY_ANSWER_SCORE
from reward.encoding import AnswerTooLong, encode_sequence

log = logging.getLogger(__name__)


def reward_pad_id(encoder: ChatEncoder, unk_id: int | None) -> int:
    """The id reward batches are padded with: the tokenizer's pad if it is not EOS, else UNK.

    The sequence-classification head scores the rightmost token that is not the pad id. Llama has no pad
    token and our tokenizers pad with EOS, which would make the head read the token before the final EOS;
    UNK never occurs in a byte-fallback encoding, so padding with it leaves the EOS as the scored token.
    """
    if encoder.pad_id != encoder.eos_id:
        return encoder.pad_id
    if unk_id is None or unk_id == encoder.eos_id:
        raise ValueError("the tokenizer has no pad or unk token distinct from EOS to pad reward batches with")
    return unk_id


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of the sequences right-padded to the longest one."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


def fit_answer(encoder: ChatEncoder, prompt: list[dict], answer: str, max_length: int) -> list[int]:
    """Ids of prompt + answer; an answer too long to fit keeps BOS and its last tokens, with a warning.

    Training skips such pairs; a scorer must return a score for every answer, and the end of an answer
    (its EOS included) is what the head reads.
    """
    try:
        return encode_sequence(encoder, prompt, answer, max_length)[0]
    except AnswerTooLong:
        ids = encode_sequence(encoder, prompt, answer, 10**9)[0]
        log.warning(
            "an answer of %d tokens exceeds max_length=%d: scoring its last tokens", len(ids), max_length
        )
        return [ids[0], *ids[len(ids) - max_length + 1 :]]


class RewardScorer:
    """Scores (prompt, answer) pairs with a sequence-classification reward model (num_labels=1)."""

    def __init__(
        self,
        model,
        encoder: ChatEncoder | None = None,
        batch_size: int = 16,
        max_length: int | None = None,
        device: str | torch.device | None = None,
    ):
        if isinstance(model, str | Path):
            from transformers import AutoModelForSequenceClassification

            encoder = encoder or ChatEncoder.from_path(model)
            model = AutoModelForSequenceClassification.from_pretrained(str(model))
        if encoder is None:
            raise ValueError(
                "RewardScorer: pass the ChatEncoder of the model's tokenizer with a model object"
            )
        if model.config.num_labels != 1:
            raise ValueError(
                f"a reward model has one output (num_labels=1), this one has {model.config.num_labels}"
            )
        self.pad_id = model.config.pad_token_id
        if self.pad_id is None or self.pad_id == encoder.eos_id:
            raise ValueError(
                f"the reward model's config.pad_token_id is {self.pad_id}: it must be set and differ from EOS "
                f"({encoder.eos_id}), or the head would not read the score at the EOS"
            )
        self.model, self.encoder, self.batch_size = model, encoder, batch_size
        self.max_length = max_length or model.config.max_position_embeddings
        self.device = torch.device(device) if device is not None else next(model.parameters()).device

    def encode(self, prompts: list[list[dict]], answers: list[str]) -> list[list[int]]:
        if len(prompts) != len(answers):
            raise ValueError(f"score: {len(prompts)} prompts but {len(answers)} answers")
        return [
            fit_answer(self.encoder, prompt, answer, self.max_length)
            for prompt, answer in zip(prompts, answers)
        ]

    @torch.no_grad()
    def score_ids(self, sequences: list[list[int]]) -> torch.Tensor:
        """Raw scores of already-encoded sequences, in their order (float32, on the CPU)."""
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        scores = torch.empty(len(sequences), dtype=torch.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                ids, mask = pad_right([sequences[i] for i in batch], self.pad_id)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                scores[batch] = logits[:, 0].float().cpu()
        finally:
            self.model.train(was_training)
        return scores

    def score(self, prompts: list[list[dict]], answers: list[str]) -> torch.Tensor:
        """One raw reward per (prompt dialog ending with a user turn, answer); apply sigmoid yourself."""
        return self.score_ids(self.encode(prompts, answers))


def score_answers(
    scorer, prompts: list[list[dict]], answers: list[str], empty_score: float = EMPTY_ANSWER_SCORE
) -> torch.Tensor:
    """`scorer.score` of every answer, with `empty_score` for the empty ones.

    An empty answer (the policy said EOS at once) has no assistant turn in the chat format, so no reward
    model can read it; it gets `empty_score` (meant to be below anything a real answer gets) instead.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"score: {len(prompts)} prompts but {len(answers)} answers")
    real = [i for i, answer in enumerate(answers) if answer.strip()]
    scores = torch.full((len(answers),), float(empty_score), dtype=torch.float32)
    if real:
        scores[real] = scorer.score([prompts[i] for i in real], [answers[i] for i in real]).float()
    return scores


def reward_model_dir(run_cfg, configured: str | None, objective: str, key: str) -> Path:
    """The configured reward model (config key `key`), or the run's finished `reward/<objective>` stage;
    a clear error naming the key and the command to run when there is neither."""
    from pipeline.stage import COMPLETE_MARKER, run_dir

    path = Path(configured).expanduser() if configured else run_dir(run_cfg) / "reward" / objective
    if configured is None and not (path / COMPLETE_MARKER).is_file():
        flag = " +experiment=safety" if objective == "safety" else ""
        raise FileNotFoundError(
            f"{key}: no finished {objective} reward model at {path}; train it first "
            f"(python reward/train.py run.name={run_cfg.name}{flag}) or set {key}=<dir>"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{key}: {path} holds no model (no config.json)")
    return path
