"""generation.next_token: inverse-transform sampling draws from softmax(logits / T), inside the nucleus."""

from __future__ import annotations

import math

import pytest
import torch

from generation.next_token import SampleNextToken, sample_next_tokens

ROWS = 60_000
# Probabilities 0.5 / 0.25 / 0.15 / 0.1 / 0 (the last token impossible).
LOGITS = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.15), math.log(0.1), float("-inf")])


def frequencies(logits: torch.Tensor, temperature: float, top_p: float = 1.0, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    picked = sample_next_tokens(logits.expand(ROWS, -1), temperature, top_p)
    return torch.bincount(picked, minlength=logits.shape[0]).double() / ROWS


def assert_close_to(freq: torch.Tensor, expected: list[float]) -> None:
    # 5 standard errors of a frequency over ROWS draws (at most 0.0102): a wrong distribution is off by more.
    for got, want in zip(freq.tolist(), expected, strict=True):
        assert got == pytest.approx(want, abs=5 * math.sqrt(want * (1 - want) / ROWS) + 1e-12), (
            freq,
            expected,
        )


def test_draws_follow_the_softmax_and_never_an_impossible_token():
    assert_close_to(frequencies(LOGITS, 1.0), [0.5, 0.25, 0.15, 0.1, 0.0])


def test_temperature_flattens_the_distribution():
    # T = 2: probabilities proportional to sqrt(p).
    roots = [math.sqrt(p) for p in (0.5, 0.25, 0.15, 0.1)]
    assert_close_to(frequencies(LOGITS, 2.0), [r / sum(roots) for r in roots] + [0.0])


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.7, [2 / 3, 1 / 3, 0.0, 0.0, 0.0]),  # 0.5 < 0.7 <= 0.75: the two likeliest tokens
        (0.4, [1.0, 0.0, 0.0, 0.0, 0.0]),  # the likeliest token alone already reaches 0.4
        (0.85, [0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0, 0.0]),
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_it(top_p, expected):
    # Token order shuffled, so that the nucleus is found by probability, not by position.
    order = torch.tensor([3, 0, 4, 2, 1])
    freq = frequencies(LOGITS[order], 1.0, top_p)
    assert_close_to(freq, [expected[i] for i in order.tolist()])


def test_each_row_draws_from_its_own_logits():
    logits = torch.full((3, 4), float("-inf"))
    logits[0, 2] = logits[1, 0] = logits[2, 3] = 0.0
    assert sample_next_tokens(logits, 1.0).tolist() == [2, 0, 3]


def test_same_seed_same_draws():
    logits = torch.randn(8, 50)
    torch.manual_seed(3)
    first = sample_next_tokens(logits, 0.8, 0.9)
    torch.manual_seed(3)
    assert torch.equal(first, sample_next_tokens(logits, 0.8, 0.9))


def test_a_draw_rounded_up_to_the_total_still_picks_a_possible_token(monkeypatch):
    # torch.rand returning its (excluded) upper bound puts the draw past every running sum.
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape, dtype=kw.get("dtype")))
    assert sample_next_tokens(LOGITS.expand(2, -1), 1.0).tolist() == [0, 0]


def test_greedy_is_not_a_temperature_to_sample_at():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample_next_tokens(LOGITS[None], 0.0)


def test_the_processor_leaves_only_the_drawn_token_finite():
    scores = torch.randn(4, 30)
    torch.manual_seed(1)
    expected = sample_next_tokens(scores, 0.7)
    torch.manual_seed(1)
    out = SampleNextToken(0.7)(torch.zeros(4, 2, dtype=torch.long), scores)
    assert torch.equal(out.argmax(-1), expected)
    assert torch.isfinite(out).sum(-1).tolist() == [1, 1, 1, 1]


def test_recording_keeps_the_drawn_tokens_log_prob_and_the_entropy_by_hand():
    # Row 0 can only draw token 1 (logits ln 0.5, ln 0.5 at T = 1 would be a coin; -inf makes it certain).
    scores = torch.tensor(
        [[float("-inf"), 0.0, float("-inf")], [math.log(0.5), math.log(0.25), math.log(0.25)]]
    )
    sampler = SampleNextToken(temperature=1.0, record=True)
    torch.manual_seed(0)
    out = sampler(torch.zeros(2, 1, dtype=torch.long), scores)
    picked = out.argmax(-1)
    assert picked[0].item() == 1
    [(logprobs, entropy)] = sampler.steps
    assert logprobs[0].item() == pytest.approx(0.0)
    assert logprobs[1].item() == pytest.approx(math.log([0.5, 0.25, 0.25][picked[1].item()]))
    # H = 0 for a certain draw (no NaN from the impossible tokens), 1.5 ln 2 for (1/2, 1/4, 1/4).
    assert entropy.tolist() == pytest.approx([0.0, 1.5 * math.log(2)])


def test_recorded_log_probs_are_under_the_temperature_and_the_whole_vocabulary():
    # T = 2 over probabilities (0.5, 0.25, 0.15, 0.1): the drawn token's log-prob is log sqrt(p) / sum sqrt(p),
    # whatever top_p cut from the draw (PPO's ratio compares full distributions).
    roots = torch.tensor([0.5, 0.25, 0.15, 0.1]).sqrt()
    sampler = SampleNextToken(temperature=2.0, top_p=0.4, record=True)
    picked = sampler(torch.zeros(1, 1, dtype=torch.long), LOGITS[None, :4]).argmax(-1)
    assert picked.item() == 0  # top_p 0.4 keeps the likeliest token alone
    [(logprobs, _)] = sampler.steps
    assert logprobs.item() == pytest.approx(math.log(roots[0] / roots.sum()))
    assert SampleNextToken(1.0).steps == []  # nothing kept unless asked
