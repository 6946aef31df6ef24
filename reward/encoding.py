"""A preference pair as the two sequences the reward model scores.

Each side is the Llama 2 training encoding of prompt + answer (`ChatEncoder.encode_for_training`), ending
with the answer's EOS; the reward model reads its score there. A pair longer than max_length loses prompt
tokens from the left (BOS stays first, the same tokens go on both sides so both answers are judged against
the same context); the answers are never cut, because a cut answer is a different answer. A pair whose
answers alone do not fit is skipped, counted and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from chat.dialog import PreferencePair
from chat.format import IGNORE_INDEX, ChatEncoder
from reward.losses import margin_for

log = logging.getLogger(__name__)


class AnswerTooLong(ValueError):
    """The answer (with BOS and EOS) is longer than max_length on its own."""


@dataclass
class EncodingReport:
    """What encoding a split did to its pairs: kept, truncated (prompt shortened) and skipped counts."""

    kept: int = 0
    truncated: int = 0
    skipped_answer_too_long: int = 0
    examples: list[str] = field(default_factory=list)  # where the first skipped pairs came from

    def as_dict(self) -> dict:
        return {
            "kept": self.kept,
            "truncated": self.truncated,
            "skipped_answer_too_long": self.skipped_answer_too_long,
        }


def split_prompt_answer(encoder: ChatEncoder, prompt: list[dict], answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of prompt + answer: the answer part is its tokens and EOS, the labelled part."""
    row = encoder.encode_for_training([*prompt, {"role": "assistant", "content": answer}], loss_on="last")
    start = next(i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX)
    return row["input_ids"][:start], row["input_ids"][start:]


def fit_prompt(prompt_ids: list[int], longest_answer: int, max_length: int) -> list[int]:
    """The prompt shortened from the left (its first token, BOS, kept) so that it + longest_answer fits."""
    if 1 + longest_answer > max_length:
        raise AnswerTooLong(
            f"the answer is {longest_answer} tokens; with BOS it exceeds max_length={max_length}"
        )
    room = max_length - longest_answer
    if len(prompt_ids) <= room:
        return prompt_ids
    return [prompt_ids[0], *prompt_ids[len(prompt_ids) - (room - 1) :]] if room > 1 else prompt_ids[:1]


def encode_sequence(
    encoder: ChatEncoder, prompt: list[dict], answer: str, max_length: int
) -> tuple[list[int], bool]:
    """(ids of prompt + answer fitted to max_length, whether the prompt was shortened)."""
    prompt_ids, answer_ids = split_prompt_answer(encoder, prompt, answer)
    fitted = fit_prompt(prompt_ids, len(answer_ids), max_length)
    return fitted + answer_ids, len(fitted) < len(prompt_ids)


def encode_pair(
    encoder: ChatEncoder, pair: PreferencePair, max_length: int
) -> tuple[list[int], list[int], bool]:
    """(chosen ids, rejected ids, whether the prompt was shortened); AnswerTooLong when an answer can't fit."""
    prompt_ids, chosen_ids = split_prompt_answer(encoder, pair.prompt, pair.chosen)
    prompt_again, rejected_ids = split_prompt_answer(encoder, pair.prompt, pair.rejected)
    # The chat format encodes the prompt apart from the answer, so the two sides cannot differ here.
    if prompt_again != prompt_ids:
        raise AssertionError("the two sides of a pair encoded their shared prompt differently")
    fitted = fit_prompt(prompt_ids, max(len(chosen_ids), len(rejected_ids)), max_length)
    return fitted + chosen_ids, fitted + rejected_ids, len(fitted) < len(prompt_ids)


def encode_pairs(
    encoder: ChatEncoder, pairs: list[PreferencePair], max_length: int, margins: dict[str, float], split: str
) -> tuple[list[dict], EncodingReport]:
    """Rows {chosen_ids, rejected_ids, margin, rating} for trl's RewardTrainer, and what was cut or skipped."""
    rows, report = [], EncodingReport()
    for index, pair in enumerate(pairs):
        try:
            chosen_ids, rejected_ids, truncated = encode_pair(encoder, pair, max_length)
        except AnswerTooLong:
            report.skipped_answer_too_long += 1
            if len(report.examples) < 3:
                report.examples.append(str(pair.meta.get("origin", f"pair {index}")))
            continue
        report.kept += 1
        report.truncated += truncated
        rows.append(
            {
                "chosen_ids": chosen_ids,
                "rejected_ids": rejected_ids,
                "margin": margin_for(pair, margins),
                "rating": pair.rating,
            }
        )
    if report.truncated:
        log.info(
            "%s: shortened the prompt of %d of %d pairs to fit %d tokens",
            split,
            report.truncated,
            len(pairs),
            max_length,
        )
    if report.skipped_answer_too_long:
        log.warning(
            "%s: skipped %d of %d pairs whose answers alone exceed %d tokens (e.g. %s)",
            split,
            report.skipped_answer_too_long,
            len(pairs),
            max_length,
            "; ".join(report.examples),
        )
    return rows, report
