"""From reward-model scores to per-token PPO rewards, as small pure functions (Llama 2, sec. 3.2.3).

The paper's reward is R(g|p) = WHITEN(LOGIT(R_c(g|p))) - beta * KL(pi_theta(g|p) || pi_0(g|p)), with
R_c choosing between the safety and the helpfulness RM. A trainer composes it from these pieces:

    combined, used_safety = combine_rewards(helpful, safety, is_safety_prompt)
    score = shaping(logit_of_sigmoid(combined), finished, length, no_eos_penalty=...)
    moments = moments.update(score)                 # running statistics, checkpointed with state_dict()
    score = moments.whiten(score)
    rewards = token_rewards(score, kl_penalty(logprobs, ref_logprobs, mask), beta, mask)

Scores are (batch,) tensors; per-token tensors are (batch, response_len) with the right-padded
response mask described in ``ppo.losses``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ppo.losses import (
    WHITEN_EPS,
    as_bool_mask,
    masked_whiten,
    require_right_padded,
    require_same_shape,
)

Tensor = torch.Tensor

KL_ESTIMATORS = ("k1", "k3")
NO_EOS_MODES = ("subtract", "replace")


def combine_rewards(
    helpful: Tensor, safety: Tensor, is_safety_prompt: Tensor, threshold: float = 0.15
) -> tuple[Tensor, Tensor]:
    """Llama 2's R_c: the safety score if is_safety(p) or sigmoid(R_s) < threshold, else the helpfulness score.

    Both scores are the raw (logit-scale) outputs of the reward models. The paper states the 0.15
    threshold on R_s read as a probability (its RM outputs go through LOGIT afterwards, so they are
    probabilities), hence the comparison is on sigmoid(R_s), i.e. R_s < logit(0.15) ~= -1.735 raw.
    Returns (R_c, used_safety), ``used_safety`` a bool tensor saying which RM each row took.
    """
    require_same_shape(helpful=helpful, safety=safety, is_safety_prompt=is_safety_prompt)
    if is_safety_prompt.dtype != torch.bool:
        raise ValueError(f"is_safety_prompt must be a bool tensor, got {is_safety_prompt.dtype}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold is a probability in (0, 1), got {threshold}")
    used_safety = is_safety_prompt | (torch.sigmoid(safety) < threshold)
    return torch.where(used_safety, safety, helpful), used_safety


def logit(p: Tensor, eps: float = 1e-6) -> Tensor:
    """Inverse sigmoid, log(p) - log(1 - p), for scores given as probabilities.

    p is clamped to [eps, 1 - eps] first: a probability of exactly 0 or 1 (common after float32
    rounding) would otherwise give -inf / +inf and wreck the whitening statistics. Values outside
    [0, 1] raise; NaN passes through so that ``is_finite_batch`` can skip the batch.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"probabilities must lie in [0, 1], got min {p.min().item()} max {p.max().item()}")
    clamped = p.clamp(eps, 1 - eps)
    return torch.log(clamped) - torch.log1p(-clamped)


def logit_of_sigmoid(raw: Tensor) -> Tensor:
    """LOGIT of RM outputs read as probabilities, for RMs that output raw scores: the identity.

    The paper's RM outputs are sigmoid(raw), so LOGIT(sigmoid(raw)) == raw exactly. Computing it
    literally loses everything at the top: in float32 sigmoid(x) rounds to 1.0 for x above ~16.6, so
    logit gives +inf, or with clamping a constant that erases the ranking between good answers.
    Returning the raw score is the exact and numerically safe path (a copy, so callers may modify it).
    """
    if not raw.is_floating_point():
        raise ValueError(f"reward scores must be floating point, got {raw.dtype}")
    return raw.clone()


def whiten(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True) -> Tensor:
    """Per-batch whitening, (x - mean) / std over the batch (unbiased std; see ``ppo.losses.masked_whiten``).

    ``mask=None`` uses every element (a (batch,) score vector); with a mask, padding comes out as 0.
    """
    return masked_whiten(x, torch.ones_like(x, dtype=torch.bool) if mask is None else mask, shift_mean)


@dataclass(frozen=True)
class RunningMoments:
    """Running count, mean and variance of every score seen so far, for whitening across batches.

    Immutable: ``update`` and ``merge`` return a new instance, so the statistics only change where a
    trainer assigns them (``moments = moments.update(scores)``) and can be saved with ``state_dict``.
    ``var`` is the population variance (sum of squared deviations / count), the form Chan et al.'s
    parallel update combines exactly; ``std`` applies Bessel's correction for whitening. Kept in Python
    floats (float64) so that thousands of float32 batches accumulate without drift.
    """

    count: int = 0
    mean: float = 0.0
    var: float = 0.0

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Chan et al. (1979): combine the moments of two disjoint sets as if computed over their union.

        mean = mean_a + delta * n_b / n and n * var = n_a * var_a + n_b * var_b + delta^2 * n_a * n_b / n,
        with delta = mean_b - mean_a and n = n_a + n_b.
        """
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        total = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / total
        sum_sq = self.var * self.count + other.var * other.count + delta**2 * self.count * other.count / total
        return RunningMoments(count=total, mean=mean, var=sum_sq / total)

    def update(self, x: Tensor, mask: Tensor | None = None) -> RunningMoments:
        """Return the moments after also seeing the (real) elements of x; non-finite values raise,
        since one NaN would corrupt every later whitening (check ``is_finite_batch`` first)."""
        values = x if mask is None else x[as_bool_mask(mask, x)]
        values = values.detach().to(torch.float64).flatten()
        if not torch.isfinite(values).all():
            raise ValueError("RunningMoments.update got NaN or inf values; skip the batch instead")
        if values.numel() == 0:
            return self
        batch = RunningMoments(
            count=values.numel(), mean=values.mean().item(), var=values.var(correction=0).item()
        )
        return self.merge(batch)

    @property
    def std(self) -> float:
        """Unbiased standard deviation, sqrt(var * n / (n - 1)); needs at least two values."""
        if self.count < 2:
            raise ValueError(f"the running standard deviation needs at least 2 values, has seen {self.count}")
        return math.sqrt(self.var * self.count / (self.count - 1))

    def whiten(self, x: Tensor, shift_mean: bool = True, mask: Tensor | None = None) -> Tensor:
        """(x - mean) / sqrt(unbiased var + 1e-8) with the running statistics; ``shift_mean=False`` adds the
        mean back (unit variance, original mean) as ``masked_whiten`` does. Padding comes out as 0."""
        scale = 1.0 / math.sqrt(self.std**2 + WHITEN_EPS)
        whitened = (x - self.mean) * scale
        if not shift_mean:
            whitened = whitened + self.mean
        return whitened if mask is None else torch.where(as_bool_mask(mask, x), whitened, 0)

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "var": self.var}

    @classmethod
    def from_state_dict(cls, state: dict) -> RunningMoments:
        """Rebuild from ``state_dict()``; a missing, extra or invalid key raises naming it.

        A constructor rather than an in-place ``load_state_dict``: the instance is immutable, and an
        in-place-looking call whose result is dropped would silently resume with fresh statistics.
        """
        expected = {"count", "mean", "var"}
        if set(state) != expected:
            raise ValueError(f"RunningMoments state: expected keys {sorted(expected)}, got {sorted(state)}")
        count, mean, var = state["count"], state["mean"], state["var"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"RunningMoments state: 'count' must be a non-negative int, got {count!r}")
        if not math.isfinite(mean):
            raise ValueError(f"RunningMoments state: 'mean' must be finite, got {mean!r}")
        if not (math.isfinite(var) and var >= 0):
            raise ValueError(f"RunningMoments state: 'var' must be finite and >= 0, got {var!r}")
        return cls(count=count, mean=float(mean), var=float(var))


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token estimate of KL(pi_theta || pi_0) on tokens sampled from pi_theta; 0 at padding.

    With d = log pi_theta(x) - log pi_0(x) and r = pi_0(x) / pi_theta(x) = exp(-d) (Schulman,
    "Approximating KL divergence", 2020):
    - k1 = d = -log r: unbiased, can be negative per token; the Llama 2 / InstructGPT penalty.
    - k3 = (r - 1) - log r = exp(-d) - 1 + d: also unbiased, never negative, lower variance when the
      policies are close.
    """
    require_same_shape(logprobs=logprobs, ref_logprobs=ref_logprobs, mask=mask)
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {', '.join(KL_ESTIMATORS)}")
    m = as_bool_mask(mask, logprobs)
    d = torch.where(m, logprobs - ref_logprobs, 0)
    per_token = d if estimator == "k1" else torch.expm1(-d) + d
    return torch.where(m, per_token, 0)


def token_rewards(score: Tensor, kl: Tensor, beta: float, mask: Tensor) -> Tensor:
    """Per-token reward: -beta * KL_t at every real token, plus the sequence score at the last real token.

    The last real token is the EOS, or the last generated token of a response cut at the length
    limit. Padding gets 0. A row without any real token has nowhere to put its score and raises.
    """
    require_same_shape(kl=kl, mask=mask)
    if score.shape != kl.shape[:1]:
        raise ValueError(
            f"score has shape {tuple(score.shape)}, expected ({kl.shape[0]},) for kl {tuple(kl.shape)}"
        )
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    m = as_bool_mask(mask, kl)
    require_right_padded(m)
    lengths = m.sum(dim=1)
    if (lengths == 0).any():
        rows = (lengths == 0).nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} have no response token to carry the sequence score")
    rewards = torch.where(m, -beta * kl, 0)
    last = (lengths - 1).unsqueeze(1)
    return rewards.scatter_add(1, last, score.to(rewards.dtype).unsqueeze(1))


def shaping(
    score: Tensor,
    finished: Tensor,
    length: Tensor,
    no_eos_penalty: float | None = None,
    length_penalty: float = 0.0,
    no_eos_mode: str = "subtract",
) -> Tensor:
    """Optional shaping of the sequence scores, applied before whitening (the penalties are in raw score units).

    - ``no_eos_penalty`` (>= 0) for answers that never emitted EOS (``finished`` False): with
      ``no_eos_mode="subtract"`` the score becomes score - penalty (TRL's ``missing_eos_penalty``; the
      answer keeps its ranking among unfinished ones); with ``"replace"`` it becomes -penalty whatever
      the RM said (an RM may score a truncated answer highly, and replacing ignores that entirely).
    - ``length_penalty`` (>= 0) per response token: score - length_penalty * length, against the
      reward models' known bias towards longer answers.
    """
    require_same_shape(score=score, finished=finished, length=length)
    if finished.dtype != torch.bool:
        raise ValueError(f"finished must be a bool tensor, got {finished.dtype}")
    if no_eos_mode not in NO_EOS_MODES:
        raise ValueError(f"unknown no_eos_mode {no_eos_mode!r}; expected one of {', '.join(NO_EOS_MODES)}")
    if length_penalty < 0 or (no_eos_penalty is not None and no_eos_penalty < 0):
        raise ValueError(
            f"penalties are amounts taken off and must be >= 0, got no_eos_penalty={no_eos_penalty}, "
            f"length_penalty={length_penalty}"
        )
    shaped = score - length_penalty * length.to(score.dtype)
    if no_eos_penalty is None:
        return shaped
    penalised = (
        shaped - no_eos_penalty if no_eos_mode == "subtract" else torch.full_like(shaped, -no_eos_penalty)
    )
    return torch.where(finished, shaped, penalised)


def minus_prompt_mean(score: Tensor, samples_per_prompt: int) -> Tensor:
    """Each score minus the mean score of its prompt's samples (rows k*n .. k*n + n - 1 answer prompt k).

    With several answers a prompt, this takes out what the prompt alone decides (how high the reward
    model scores its answers at all) and leaves how good each answer is next to its siblings: the same
    comparison rejection sampling makes. One sample a prompt has nothing to compare with and raises.
    """
    if samples_per_prompt < 2:
        raise ValueError(f"a per-prompt baseline needs >= 2 samples a prompt, got {samples_per_prompt}")
    if score.dim() != 1 or score.numel() % samples_per_prompt:
        raise ValueError(
            f"score of shape {tuple(score.shape)} does not split into groups of {samples_per_prompt}"
        )
    groups = score.view(-1, samples_per_prompt)
    return (groups - groups.mean(dim=1, keepdim=True)).flatten()


def is_finite_batch(*tensors: Tensor) -> bool:
    """True when no tensor holds NaN or inf: a trainer skips (and counts) an update where this is False."""
    if not tensors:
        raise ValueError("is_finite_batch needs at least one tensor")
    return all(bool(torch.isfinite(t).all()) for t in tensors)
