"""What to generate (SamplingParams), what comes back (Completion), and what an encoder must offer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chat.dialog import DialogError


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0
    num_samples: int = 1  # completions per dialog
    seed: int = 0
    # Also return each sampled token's log-probability under softmax(logits / temperature) and the entropy of
    # that distribution (Completion.token_logprobs / token_entropies), where the backend can (HFGenerator):
    # PPO's old log-probs then come from the decoding that drew the tokens, not from another forward.
    logprobs: bool = False

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise ValueError(f"SamplingParams.num_samples must be >= 1, got {self.num_samples}")
        if self.logprobs and self.temperature == 0:
            raise ValueError("SamplingParams.logprobs needs sampling (temperature > 0), not greedy decoding")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """One generated answer.

    `token_ids` are the generated ids up to and including the EOS when `finished`; when not finished the
    answer was cut at max_new_tokens. `text` is the decoding of the ids without the EOS. With
    `SamplingParams.logprobs` (and a backend that records them), one log-probability and one entropy per
    token id; None otherwise.
    """

    text: str
    token_ids: list[int]
    finished: bool
    token_logprobs: list[float] | None = None
    token_entropies: list[float] | None = None


class ChatEncoderLike(Protocol):
    """The part of chat.format.ChatEncoder that generation needs."""

    bos_id: int
    eos_id: int
    pad_id: int | None

    def encode_for_generation(self, messages: list[dict]) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def encode_prompts(encoder: ChatEncoderLike, dialogs: list[list[dict]]) -> list[list[int]]:
    """Prompt ids of every dialog; a bad dialog raises DialogError naming its index."""
    prompts = []
    for index, dialog in enumerate(dialogs):
        try:
            prompts.append(list(encoder.encode_for_generation(dialog)))
        except DialogError as error:
            raise DialogError(f"dialog {index}: {error}") from error
    return prompts


def completion_from_ids(encoder: ChatEncoderLike, generated: list[int]) -> Completion:
    """Cut the generated ids after the first EOS (what follows is padding) and decode."""
    if encoder.eos_id in generated:
        answer = generated[: generated.index(encoder.eos_id)]
        return Completion(encoder.decode(answer), answer + [encoder.eos_id], finished=True)
    return Completion(encoder.decode(generated), list(generated), finished=False)
