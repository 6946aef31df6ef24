"""Drawing the next token by inverse transform sampling: one uniform number per row.

`torch.multinomial`, which `model.generate(do_sample=True)` calls every step, draws one exponential number per
vocabulary entry and row; on a CPU that was 22% of a batched decoding step of the tiny Llama (64 rows x 3,000
entries, 3.7 ms of 16; bench/RESULTS.md). A cumulative sum and a binary search per row cost a fraction of that
and draw from the same distribution.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


def sample_next_tokens(logits: torch.Tensor, temperature: float, top_p: float = 1.0) -> torch.Tensor:
    """One token id per row of `logits` (rows x vocabulary), drawn from softmax(logits / temperature),
    restricted to the nucleus of mass `top_p` when below 1 (the fewest most likely tokens whose probabilities
    reach top_p, at least one). Uses the global torch RNG of the logits' device."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to sample, got {temperature}")
    return draw(torch.softmax(logits.float() / temperature, dim=-1), top_p)


def draw(probs: torch.Tensor, top_p: float = 1.0) -> torch.Tensor:
    """One token id per row of `probs` (rows x vocabulary, each row summing to 1), from the nucleus of mass
    `top_p` when below 1."""
    order = None
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        mass_before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(mass_before >= top_p, 0.0)  # the most likely token has mass_before 0: kept
    # A float64 running sum: over a 32k vocabulary it keeps tokens of probability down to ~1e-16 apart.
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)
    draw_at = torch.rand(cdf.shape[0], 1, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    # right=True: the first entry whose running sum exceeds the draw, which never has probability 0 ...
    picked = torch.searchsorted(cdf, draw_at, right=True).clamp_(max=cdf.shape[1] - 1)
    # ... unless the draw rounded up to the total (odds ~1e-16) and fell off the end: take the likeliest token.
    impossible = probs.gather(-1, picked) == 0
    if impossible.any():
        picked = torch.where(impossible, probs.argmax(dim=-1, keepdim=True), picked)
    if order is not None:
        picked = order.gather(-1, picked)
    return picked.squeeze(-1)


class SampleNextToken(LogitsProcessor):
    """Samples inside `generate`: leaves the drawn token the only finite score, so that greedy decoding's
    argmax takes it. HF generate thus keeps its cache, stopping and padding, with our faster draw.

    With `record`, each call also keeps, per row, the drawn token's log-probability under softmax(scores /
    temperature) (the whole vocabulary, as PPO's ratio needs, even when top_p cuts the draw short) and that
    distribution's entropy in nats: `steps`, one pair of (rows,) tensors a generated token."""

    def __init__(self, temperature: float, top_p: float = 1.0, record: bool = False):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to sample, got {temperature}")
        self.temperature = temperature
        self.top_p = top_p
        self.record = record
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.record:
            logprobs = torch.log_softmax(scores.float() / self.temperature, dim=-1)
            probs = logprobs.exp()
            picked = draw(probs, self.top_p)
            entropy = torch.special.entr(probs).sum(-1)  # entr(0) = 0 where p log p would be NaN
            self.steps.append((logprobs.gather(-1, picked[:, None]).squeeze(-1), entropy))
        else:
            picked = sample_next_tokens(scores, self.temperature, self.top_p)
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(-1, picked[:, None], 0.0)
