"""The PPO objective as small pure functions on (batch, response_len) tensors with a response mask.

Conventions shared by every function here:

- ``mask`` is 1 (or True) on real response tokens and 0 after the EOS; responses are right-padded, so a
  row's real tokens are a prefix of it. Bool, integer and 0/1 float masks are all accepted.
- Padding never influences a result: padded positions are replaced by 0 with ``torch.where`` before any
  arithmetic, so garbage there (even NaN or inf) neither changes a value nor poisons a gradient.
- Means are token-level: every real token of the mini-batch weighs the same, whatever its row length
  (TRL's PPO; OpenRLHF offers this and a per-sequence mean).
- Nothing here detaches, moves or mutates its inputs, except the logged statistics (clip fractions,
  approximate KL, explained variance), which are returned detached because they are never differentiated.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

# Added to the variance before the reciprocal square root so a constant batch whitens to 0, not NaN
# (the value TRL and OpenRLHF use).
WHITEN_EPS = 1e-8


def as_bool_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Return ``mask`` as a bool tensor after checking it has ``like``'s shape and only 0/1 values."""
    if mask.shape != like.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the values have shape {tuple(like.shape)}")
    if mask.dtype == torch.bool:
        return mask
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("mask must contain only 0 and 1 (1 = real response token, 0 = padding)")
    return mask != 0


def require_right_padded(mask: Tensor) -> None:
    """Raise unless every row's real tokens form a prefix (a 0 followed by a 1 means a hole or left padding).

    GAE and the reward placement rely on it: the token after a row's last real one is padding, so
    nothing is bootstrapped from it, and the sequence score goes to position ``mask.sum() - 1``.
    """
    if mask.dim() != 2:
        raise ValueError(f"response mask must be 2-D (batch, response_len), got shape {tuple(mask.shape)}")
    holes = (~mask[:, :-1]) & mask[:, 1:]
    if holes.any():
        row = int(holes.any(dim=1).nonzero()[0])
        raise ValueError(f"response mask row {row} is not right-padded: a real token follows padding")


def require_same_shape(**tensors: Tensor) -> None:
    """Raise naming every argument's shape unless they all agree."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shapes differ: {listed}")


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """sum(x * mask) / sum(mask), over everything (``dim=None``) or along ``dim``.

    Where there is no real token (an all-masked row, or an all-masked batch) the mean is 0 rather than
    NaN: an empty row has nothing to contribute, and a NaN would poison the whole batch's loss.
    """
    m = as_bool_mask(mask, x)
    total = torch.where(m, x, 0).sum() if dim is None else torch.where(m, x, 0).sum(dim)
    count = m.sum() if dim is None else m.sum(dim)
    return total / count.clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the real tokens, sum((x - mean)^2 * mask) / (n - 1), pooled over the whole batch.

    Unbiased (Bessel's n - 1) by default, as in the PPO implementations (OpenAI baselines, TRL,
    OpenRLHF); the difference only matters for tiny batches. Raises if there are too few real tokens
    for the variance to exist (2 unbiased, 1 biased) instead of returning inf/NaN.
    """
    m = as_bool_mask(mask, x)
    n = int(m.sum())
    needed = 2 if unbiased else 1
    if n < needed:
        raise ValueError(f"variance needs at least {needed} real tokens, the mask has {n}")
    centred = torch.where(m, x - masked_mean(x, m), 0)
    return centred.square().sum() / (n - 1 if unbiased else n)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """(x - mean) / sqrt(var + 1e-8) over the real tokens (unbiased var); padding comes out as 0.

    With ``shift_mean=False`` the mean is added back, (x - mean) / std + mean: unit variance but the
    original mean, as TRL's ``whiten`` does for rewards whose sign carries meaning.
    """
    m = as_bool_mask(mask, x)
    mean, var = masked_mean(x, m), masked_var(x, m)
    whitened = (x - mean) * torch.rsqrt(var + WHITEN_EPS)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(m, whitened, 0)


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over right-padded responses.

    delta_t = r_t + gamma * V_{t+1} - V_t, with V_{t+1} = 0 after a row's last real token,
    A_t = delta_t + gamma * lam * A_{t+1}, and returns R_t = A_t + V_t (the value targets).

    The last real token is treated as terminal even when the response was cut at the length limit
    without an EOS (as TRL and OpenRLHF do); ``rewards.shaping`` can penalise such answers instead.
    A reversed loop over time is used: response lengths are at most a few hundred and the loop is
    obviously right, whereas the vectorised discounted-cumsum form is easy to get wrong at padding.
    Advantages and returns are 0 at padding.
    """
    require_same_shape(rewards=rewards, values=values, mask=mask)
    m = as_bool_mask(mask, rewards)
    require_right_padded(m)
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gamma and lam must lie in [0, 1], got gamma={gamma}, lam={lam}")
    # With rewards and values zeroed at padding, delta and A are exactly 0 there, so a row's last real
    # token bootstraps from V = 0 and continues from A = 0: nothing leaks in from the padding.
    r = torch.where(m, rewards, 0)
    v = torch.where(m, values, 0)
    next_value = torch.zeros_like(v[:, 0])
    next_advantage = torch.zeros_like(v[:, 0])
    advantages_reversed = []
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        next_value = v[:, t]
        advantages_reversed.append(next_advantage)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = torch.where(m, advantages + v, 0)
    return advantages, returns


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip: float = 0.2
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's clipped surrogate: mean over real tokens of max(-A * ratio, -A * clamp(ratio, 1 - clip, 1 + clip)).

    ratio = exp(logprobs - old_logprobs). The max of the two losses is the min of the two objectives:
    the policy gains nothing from moving the ratio beyond the clip range in the advantage's direction.
    Returns (loss, clip_fraction, approx_kl):

    - clip_fraction: share of real tokens where the clipped term is strictly the larger loss, i.e.
      where the gradient is cut off. A ratio exactly at 1 +- clip is not clipped (both terms are equal).
    - approx_kl: Schulman's k3 estimate of KL(old || new) on tokens sampled from the old policy,
      mean of (ratio - 1) - log(ratio); never negative, unlike the plain mean of -log(ratio).
    """
    require_same_shape(logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages, mask=mask)
    if clip <= 0:
        raise ValueError(f"clip must be positive, got {clip}")
    m = as_bool_mask(mask, logprobs)
    log_ratio = torch.where(m, logprobs - old_logprobs, 0)
    ratio = torch.exp(log_ratio)
    adv = torch.where(m, advantages, 0)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), m)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(logprobs.dtype), m)
        approx_kl = masked_mean((ratio - 1) - log_ratio, m)
    return loss, clip_fraction, approx_kl


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float | None = 0.2
) -> tuple[Tensor, Tensor]:
    """Clipped value loss: 0.5 * mean over real tokens of max((V - R)^2, (V_clip - R)^2).

    V_clip = V_old + clamp(V - V_old, -clip, clip) keeps the value head from moving further than
    ``clip`` from its rollout-time prediction in one update (PPO2 / TRL / OpenRLHF). The 0.5 makes the
    gradient V - R. ``clip=None`` gives the plain squared error. Returns (loss, value_clip_fraction),
    the fraction being the share of real tokens where the clipped error is strictly larger.
    """
    require_same_shape(values=values, old_values=old_values, returns=returns, mask=mask)
    m = as_bool_mask(mask, values)
    v, targets = torch.where(m, values, 0), torch.where(m, returns, 0)
    unclipped = (v - targets).square()
    if clip is None:
        return 0.5 * masked_mean(unclipped, m), v.new_zeros(())
    if clip <= 0:
        raise ValueError(f"value clip must be positive or None, got {clip}")
    old = torch.where(m, old_values, 0)
    clipped = (old + torch.clamp(v - old, -clip, clip) - targets).square()
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), m)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(values.dtype), m)
    return loss, clip_fraction


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """1 - Var(R - V) / Var(R) over real tokens: 1 is a perfect value head, 0 predicts no better than a
    constant, negative is worse than that. NaN when the returns do not vary (the ratio is undefined;
    a logged NaN is honest where any number would mislead), as in Stable-Baselines3.
    """
    require_same_shape(values=values, returns=returns, mask=mask)
    with torch.no_grad():
        var_returns = masked_var(returns, mask)
        if var_returns == 0:
            return torch.full((), float("nan"), dtype=returns.dtype)
        return 1 - masked_var(returns - values, mask) / var_returns


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Shannon entropy in nats of softmax(logits) along the last axis, H = -sum(p * log p).

    Wraps ``trl.trainer.utils.entropy_from_logits`` (chunked, so a (batch, len, vocab) tensor never
    materialises twice). Imported on first use: importing trl costs several seconds, which every
    user of this module would otherwise pay.
    """
    from trl.trainer.utils import entropy_from_logits as trl_entropy_from_logits

    return trl_entropy_from_logits(logits)
