"""PPO math (ppo.losses, ppo.rewards) against hand-computed values, numpy and naive references."""

import json
import math

import numpy as np
import pytest
import torch

from ppo.losses import (
    entropy_from_logits,
    explained_variance,
    gae,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    value_loss,
)
from ppo.rewards import (
    RunningMoments,
    combine_rewards,
    is_finite_batch,
    kl_penalty,
    logit,
    logit_of_sigmoid,
    shaping,
    token_rewards,
    whiten,
)

T = torch.tensor
F64 = torch.float64


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), atol=atol, rtol=0
    )


def with_padding(x: torch.Tensor, mask: torch.Tensor, fill: float) -> torch.Tensor:
    """x with every padded position replaced by ``fill``."""
    return torch.where(mask.bool(), x, torch.full_like(x, fill))


def random_right_padded(batch=5, length=7, seed=0):
    """Random values and a right-padded mask with lengths 1..length (one row full, one row length 1)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    lengths[0], lengths[-1] = length, 1
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return torch.Generator().manual_seed(seed + 1), mask


MASK_2x3 = T([[1, 1, 0], [1, 0, 0]])


# ---------------------------------------------------------------- masked statistics


def test_masked_mean_by_hand():
    x = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    close(masked_mean(x, MASK_2x3), 7 / 3)  # (1 + 2 + 4) / 3 tokens
    close(masked_mean(x, MASK_2x3, dim=1), [1.5, 4.0])  # (1 + 2) / 2, 4 / 1


def test_masked_mean_of_empty_rows_and_batches_is_zero():
    x = T([[1.0, 2.0], [3.0, 4.0]])
    close(masked_mean(x, T([[1, 1], [0, 0]]), dim=1), [1.5, 0.0])
    close(masked_mean(x, torch.zeros(2, 2)), 0.0)


def test_masked_mean_ignores_nan_and_inf_padding():
    x = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    for fill in (float("nan"), float("inf"), -1e30):
        close(masked_mean(with_padding(x, MASK_2x3, fill), MASK_2x3), 7 / 3)


def test_masks_are_validated():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match="only 0 and 1"):
        masked_mean(x, T([[1, 2, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        masked_mean(x, torch.ones(2, 2))


def test_masked_var_by_hand():
    x = T([[1.0, 2.0, 99.0], [4.0, -7.0, 12.0]])
    # real tokens 1, 2, 4: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9
    close(masked_var(x, MASK_2x3), 42 / 9 / 2)  # unbiased: / (3 - 1)
    close(masked_var(x, MASK_2x3, unbiased=False), 42 / 9 / 3)


def test_masked_var_needs_enough_tokens():
    with pytest.raises(ValueError, match="at least 2 real tokens"):
        masked_var(T([[1.0, 2.0]]), T([[1, 0]]))
    close(masked_var(T([[1.0, 2.0]]), T([[1, 0]]), unbiased=False), 0.0)


def test_masked_whiten_matches_numpy():
    gen, mask = random_right_padded(seed=3)
    x = torch.randn(mask.shape, generator=gen, dtype=F64) * 3 + 5
    real = x[mask].numpy()
    expected = (real - real.mean()) / np.sqrt(real.var(ddof=1) + 1e-8)
    out = masked_whiten(x, mask)
    close(out[mask], expected)
    close(out[~mask], torch.zeros(int((~mask).sum())))
    kept_mean = masked_whiten(x, mask, shift_mean=False)[mask].numpy()
    close(kept_mean, expected + real.mean())
    close(kept_mean.std(ddof=1), 1.0)


def test_masked_whiten_of_a_constant_is_zero_not_nan():
    close(masked_whiten(torch.full((2, 2), 4.0), torch.ones(2, 2)), torch.zeros(2, 2))


# ---------------------------------------------------------------- GAE


def test_gae_three_tokens_by_hand():
    rewards, values = T([[0.0, 0.0, 1.0]], dtype=F64), T([[0.5, 0.6, 0.7]], dtype=F64)
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.5)
    # delta_2 = 1 + 0 - 0.7 = 0.3          A_2 = 0.3
    # delta_1 = 0 + 0.7 - 0.6 = 0.1        A_1 = 0.1 + 0.5 * 0.3 = 0.25
    # delta_0 = 0 + 0.6 - 0.5 = 0.1        A_0 = 0.1 + 0.5 * 0.25 = 0.225
    close(adv, [[0.225, 0.25, 0.3]])
    close(ret, [[0.725, 0.85, 1.0]])  # A + V


def test_gae_with_discount_and_padding_by_hand():
    rewards = T([[0.0, 1.0, 50.0]], dtype=F64)  # 50 and 99 sit on padding and must not leak
    values = T([[0.5, 0.2, 99.0]], dtype=F64)
    adv, ret = gae(rewards, values, T([[1, 1, 0]]), gamma=0.9, lam=0.5)
    # delta_1 = 1 + 0.9 * 0 - 0.2 = 0.8 (no bootstrap from padding)   A_1 = 0.8
    # delta_0 = 0 + 0.9 * 0.2 - 0.5 = -0.32                              A_0 = -0.32 + 0.45 * 0.8 = 0.04
    close(adv, [[0.04, 0.8, 0.0]])
    close(ret, [[0.54, 1.0, 0.0]])


def naive_gae(rewards, values, lengths, gamma, lam):
    """A_t = sum_l (gamma * lam)^l * delta_{t+l} on plain lists, one row at a time."""
    advantages = []
    for r, v, n in zip(rewards.tolist(), values.tolist(), lengths.tolist()):
        v_next = v[1:n] + [0.0]
        deltas = [r[t] + gamma * v_next[t] - v[t] for t in range(n)]
        row = [sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t)) for t in range(n)]
        advantages.append(row + [0.0] * (len(r) - n))
    return advantages


def test_gae_matches_naive_reference_whatever_the_padding_holds():
    gen, mask = random_right_padded(batch=6, length=9, seed=7)
    mask[3] = False  # an all-masked row: zero advantages and returns
    rewards = torch.randn(mask.shape, generator=gen, dtype=F64)
    values = torch.randn(mask.shape, generator=gen, dtype=F64)
    expected = naive_gae(rewards, values, mask.sum(1), gamma=0.97, lam=0.9)
    for fill in (0.0, 1e6, float("nan")):
        adv, ret = gae(with_padding(rewards, mask, fill), with_padding(values, mask, fill), mask, 0.97, 0.9)
        close(adv, expected)
        close(ret, torch.where(mask, torch.as_tensor(expected, dtype=F64) + values, 0))


def test_gae_with_lambda_and_gamma_one_is_reward_to_go_minus_values():
    gen, mask = random_right_padded(batch=4, length=6, seed=11)
    rewards = torch.where(mask, torch.randn(mask.shape, generator=gen, dtype=F64), 0)
    values = torch.where(mask, torch.randn(mask.shape, generator=gen, dtype=F64), 0)
    reward_to_go = rewards.flip(1).cumsum(1).flip(1)  # sum_{k >= t} r_k; padding rewards are 0
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(adv, torch.where(mask, reward_to_go - values, 0))
    close(ret, torch.where(mask, reward_to_go, 0))


def test_gae_rejects_masks_that_are_not_right_padded():
    with pytest.raises(ValueError, match="row 1 is not right-padded"):
        gae(torch.zeros(2, 3), torch.zeros(2, 3), T([[1, 1, 0], [0, 1, 1]]))
    with pytest.raises(ValueError, match="lam"):
        gae(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), lam=1.5)


# ---------------------------------------------------------------- policy loss

# ratios 1.5, 0.5, 1.1, 1.5 with advantages 1, -1, 2, -1 and clip 0.2:
#   token 0: -1 * 1.5 = -1.5 vs -1 * 1.2 = -1.2  -> max -1.2, clipped
#   token 1:  1 * 0.5 =  0.5 vs  1 * 0.8 =  0.8  -> max  0.8, clipped
#   token 2: -2 * 1.1 = -2.2 vs -2 * 1.1 = -2.2  -> -2.2, inside the range
#   token 3:  1 * 1.5 =  1.5 vs  1 * 1.2 =  1.2  -> max  1.5, unclipped (the pessimistic side)
RATIOS, ADVANTAGES = [1.5, 0.5, 1.1, 1.5], [1.0, -1.0, 2.0, -1.0]


def test_policy_loss_by_hand():
    old = T([[-1.0, -2.0, -0.5, -3.0]], dtype=F64)
    new = (old + torch.log(T([RATIOS], dtype=F64))).requires_grad_()
    loss, clip_fraction, approx_kl = policy_loss(
        new, old, T([ADVANTAGES], dtype=F64), torch.ones(1, 4), clip=0.2
    )
    close(loss, (-1.2 + 0.8 - 2.2 + 1.5) / 4)  # -0.275
    close(clip_fraction, 2 / 4)
    close(approx_kl, sum((r - 1) - math.log(r) for r in RATIOS) / 4)
    loss.backward()
    # d/dlogp of -A * ratio is -A * ratio; clipped tokens get no gradient; / 4 tokens
    close(new.grad, [[0.0, 0.0, -2.0 * 1.1 / 4, 1.0 * 1.5 / 4]])


def test_policy_loss_clip_boundary_is_not_clipped():
    old = torch.zeros(1, 1, dtype=F64)
    at_edge = torch.log(T([[1.25]], dtype=F64))
    assert torch.exp(at_edge).item() == 1.25  # exactly representable, so this really is the edge
    for log_ratio, clipped in ((at_edge, False), (at_edge + 1e-6, True)):
        new = log_ratio.clone().requires_grad_()
        loss, clip_fraction, _ = policy_loss(
            new, old, torch.ones(1, 1, dtype=F64), torch.ones(1, 1), clip=0.25
        )
        loss.backward()
        close(clip_fraction, 1.0 if clipped else 0.0)
        close(new.grad, [[0.0]] if clipped else [[-1.25]])  # -A * ratio at the edge


def test_policy_loss_is_zero_with_equal_policies_and_kl_is_zero():
    logp = T([[-1.0, -2.0]])
    loss, clip_fraction, approx_kl = policy_loss(logp, logp, T([[1.0, 3.0]]), torch.ones(1, 2))
    close(loss, -2.0)  # ratio 1: -(1 + 3) / 2
    close(clip_fraction, 0.0)
    close(approx_kl, 0.0)


def test_policy_loss_padding_and_empty_rows_change_nothing():
    gen, mask = random_right_padded(seed=5)
    mask[2] = False  # an all-masked row
    old = -torch.rand(mask.shape, generator=gen, dtype=F64)
    new = old + 0.3 * torch.randn(mask.shape, generator=gen, dtype=F64)
    adv = torch.randn(mask.shape, generator=gen, dtype=F64)
    results, grads = [], []
    for fill in (0.0, 7.0, float("nan")):
        logp = with_padding(new, mask, fill).requires_grad_()
        out = policy_loss(logp, with_padding(old, mask, -fill), with_padding(adv, mask, fill), mask)
        out[0].backward()
        results.append(torch.stack(out).detach())
        grads.append(logp.grad)
    for result, grad in zip(results[1:], grads[1:]):
        close(result, results[0])
        close(grad, grads[0])
    assert torch.isfinite(grads[-1]).all()
    close(grads[0][~mask], torch.zeros(int((~mask).sum())))


def test_policy_loss_of_an_all_masked_batch_is_zero():
    x = T([[float("nan"), 1.0]])
    out = policy_loss(x, x, x, torch.zeros(1, 2))
    close(torch.stack(out), [0.0, 0.0, 0.0])


# ---------------------------------------------------------------- value loss

# values 1.0, 2.0, 0.0; old values 0.5, 2.1, 0.3; returns 2.0, 1.0, 0.1; clip 0.2
#   token 0: V - V_old = 0.5 -> clip 0.2, V_clip = 0.7: (1 - 2)^2 = 1 vs (0.7 - 2)^2 = 1.69 -> 1.69, clipped
#   token 1: V - V_old = -0.1, inside: (2 - 1)^2 = 1 both -> 1
#   token 2: V - V_old = -0.3 -> -0.2, V_clip = 0.1: (0 - 0.1)^2 = 0.01 vs 0 -> 0.01, not clipped
VALUES, OLD_VALUES, RETURNS = [[1.0, 2.0, 0.0]], [[0.5, 2.1, 0.3]], [[2.0, 1.0, 0.1]]


def test_value_loss_by_hand():
    values = T(VALUES, dtype=F64).requires_grad_()
    loss, clip_fraction = value_loss(
        values, T(OLD_VALUES, dtype=F64), T(RETURNS, dtype=F64), torch.ones(1, 3)
    )
    close(loss, 0.5 * (1.69 + 1.0 + 0.01) / 3)  # 0.45
    close(clip_fraction, 1 / 3)
    loss.backward()
    # token 0's loss comes from V_clip, which does not move with V; others: 0.5 * 2 * (V - R) / 3
    close(values.grad, [[0.0, (2.0 - 1.0) / 3, (0.0 - 0.1) / 3]])


def test_value_loss_without_clipping_is_half_the_squared_error():
    loss, clip_fraction = value_loss(T(VALUES), T(OLD_VALUES), T(RETURNS), torch.ones(1, 3), clip=None)
    close(loss, 0.5 * (1.0 + 1.0 + 0.01) / 3)
    close(clip_fraction, 0.0)


def test_value_loss_ignores_padding():
    mask = T([[1, 1, 0]])
    expected = value_loss(T(VALUES), T(OLD_VALUES), T(RETURNS), mask)
    close(expected[0], 0.5 * (1.69 + 1.0) / 2)
    for fill in (-5.0, float("inf")):
        got = value_loss(*(with_padding(T(x), mask, fill) for x in (VALUES, OLD_VALUES, RETURNS)), mask)
        close(torch.stack(got), torch.stack(expected))


# ---------------------------------------------------------------- explained variance, entropy


def test_explained_variance_by_hand():
    returns, mask = T([[1.0, 2.0, 3.0, 4.0]]), torch.ones(1, 4)
    close(explained_variance(returns, returns, mask), 1.0)
    close(explained_variance(torch.full((1, 4), 2.5), returns, mask), 0.0)
    # residual 0, 0, 0, -1: var 0.75 / 3 = 0.25; Var(R) = 5/3; 1 - 0.25 / (5/3) = 0.85
    close(explained_variance(T([[1.0, 2.0, 3.0, 5.0]]), returns, mask), 0.85)
    padded = explained_variance(
        T([[1.0, 2.0, 3.0, 5.0, 9.0]]), T([[1.0, 2.0, 3.0, 4.0, -9.0]]), T([[1, 1, 1, 1, 0]])
    )
    close(padded, 0.85)
    assert math.isnan(explained_variance(returns, torch.ones(1, 4), mask).item())


def test_entropy_from_logits():
    probs = T([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]], dtype=F64)
    # -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 0.5 ln 2 + ln 2;  uniform over 3: ln 3
    close(entropy_from_logits(torch.log(probs) + 7.0), [1.5 * math.log(2), math.log(3)])


# ---------------------------------------------------------------- combining the reward models


def test_combine_rewards_four_branches():
    helpful = T([1.0, 1.0, 1.0, 1.0])
    safety = T([-3.0, 0.5, -3.0, 0.5])  # sigmoid(-3) = 0.047 < 0.15; sigmoid(0.5) = 0.62
    is_safety = T([True, True, False, False])
    combined, used_safety = combine_rewards(helpful, safety, is_safety)
    close(combined, [-3.0, 0.5, -3.0, 1.0])  # only a helpfulness prompt with a safe answer uses R_h
    assert used_safety.tolist() == [True, True, True, False]


def test_combine_rewards_threshold_is_on_the_sigmoid():
    # logit(0.15) = ln(0.15 / 0.85) = -1.7346: -1.76 is just unsafe (0.1468), -1.70 just safe (0.1545)
    combined, used = combine_rewards(T([2.0, 2.0]), T([-1.76, -1.70]), T([False, False]))
    close(combined, [-1.76, 2.0])
    assert used.tolist() == [True, False]
    combined, _ = combine_rewards(T([2.0]), T([0.0]), T([False]), threshold=0.6)  # sigmoid(0) = 0.5 < 0.6
    close(combined, [0.0])


def test_combine_rewards_validates_inputs():
    with pytest.raises(ValueError, match="bool"):
        combine_rewards(T([1.0]), T([1.0]), T([1]))
    with pytest.raises(ValueError, match="probability"):
        combine_rewards(T([1.0]), T([1.0]), T([True]), threshold=1.5)
    with pytest.raises(ValueError, match="shapes differ"):
        combine_rewards(T([1.0, 2.0]), T([1.0]), T([True]))


def test_logit_by_hand_and_clamped_at_the_ends():
    close(logit(T([0.5, 0.75, 0.1])), [0.0, math.log(3.0), -math.log(9.0)])
    eps = 1e-3
    close(logit(T([0.0, 1.0], dtype=F64), eps=eps), [math.log(eps / (1 - eps)), math.log((1 - eps) / eps)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        logit(T([1.2]))
    assert torch.isnan(logit(T([float("nan")]))).all()


def test_logit_of_sigmoid_is_exact_where_the_literal_form_saturates():
    raw = T([-3.0, 0.0, 2.0, 20.0, 40.0])
    close(logit_of_sigmoid(raw), raw, atol=0)
    literal = logit(torch.sigmoid(raw))  # float32 sigmoid(20) and sigmoid(40) round to 1.0
    close(literal[:3], raw[:3], atol=1e-4)
    assert literal[3] == literal[4] < 15  # both clamped to logit(1 - 1e-6) ~= 13.8: ranking lost
    out = logit_of_sigmoid(raw)
    out += 1
    close(raw, [-3.0, 0.0, 2.0, 20.0, 40.0])  # a copy: the caller's scores are untouched


def test_whiten_a_score_vector():
    # mean 2.5, unbiased var 5/3
    close(whiten(T([1.0, 2.0, 3.0, 4.0])), [(x - 2.5) / math.sqrt(5 / 3 + 1e-8) for x in (1, 2, 3, 4)])
    close(
        whiten(T([1.0, 2.0, 3.0, 4.0]), shift_mean=False),
        [(x - 2.5) / math.sqrt(5 / 3) + 2.5 for x in (1, 2, 3, 4)],
    )


# ---------------------------------------------------------------- running moments


def test_running_moments_merge_by_hand():
    a = RunningMoments().update(T([1.0, 2.0, 3.0]))  # count 3, mean 2, var 2/3
    b = RunningMoments().update(T([4.0, 5.0]))  # count 2, mean 4.5, var 1/4
    merged = a.merge(b)
    # delta 2.5: mean 2 + 2.5 * 2/5 = 3; n var = 2 + 0.5 + 6.25 * 3 * 2 / 5 = 10 -> var 2 (of 1..5)
    assert merged.count == 5
    close([merged.mean, merged.var], [3.0, 2.0])
    close(merged.std, math.sqrt(2.5))  # unbiased: 10 / 4


def test_running_moments_two_batches_equal_one_batch_of_both():
    gen = torch.Generator().manual_seed(2)
    first, second = torch.randn(37, generator=gen) * 4 + 1, torch.randn(11, generator=gen) - 3
    sequential = RunningMoments().update(first).update(second)
    together = RunningMoments().update(torch.cat([first, second]))
    both = torch.cat([first, second]).double().numpy()
    assert sequential.count == together.count == 48
    close([sequential.mean, sequential.var], [together.mean, together.var], atol=1e-12)
    close([sequential.mean, sequential.var], [both.mean(), both.var()], atol=1e-9)
    close(sequential.whiten(first), together.whiten(first), atol=1e-6)


def test_running_moments_whiten_matches_batch_whiten_after_one_batch():
    x = T([1.0, 2.0, 3.0, 4.0])
    moments = RunningMoments().update(x)
    close(moments.whiten(x), whiten(x))
    close(moments.whiten(x, shift_mean=False), whiten(x, shift_mean=False))


def test_running_moments_masked_update_ignores_padding():
    x, mask = T([[1.0, 2.0, 1e9], [3.0, float("nan"), 7.0]]), T([[1, 1, 0], [1, 0, 0]])
    moments = RunningMoments().update(x, mask)
    assert moments.count == 3
    close([moments.mean, moments.var], [2.0, 2 / 3])
    close(moments.whiten(x, mask=mask)[~mask.bool()], [0.0, 0.0, 0.0])


def test_running_moments_state_dict_round_trip():
    moments = RunningMoments().update(T([0.5, -1.0, 4.0]))
    restored = RunningMoments.from_state_dict(json.loads(json.dumps(moments.state_dict())))
    assert restored == moments
    assert restored.update(T([2.0])) == moments.update(T([2.0]))


def test_running_moments_rejects_bad_state_and_bad_values():
    with pytest.raises(ValueError, match="expected keys"):
        RunningMoments.from_state_dict({"count": 1, "mean": 0.0})
    with pytest.raises(ValueError, match="'var'"):
        RunningMoments.from_state_dict({"count": 2, "mean": 0.0, "var": -1.0})
    with pytest.raises(ValueError, match="'count'"):
        RunningMoments.from_state_dict({"count": 2.5, "mean": 0.0, "var": 1.0})
    with pytest.raises(ValueError, match="NaN or inf"):
        RunningMoments().update(T([1.0, float("nan")]))
    with pytest.raises(ValueError, match="at least 2 values"):
        RunningMoments().update(T([1.0])).whiten(T([1.0]))
    assert RunningMoments().update(T([1.0]), T([0])) == RunningMoments()  # nothing real: unchanged


# ---------------------------------------------------------------- KL penalty and per-token rewards


def test_kl_penalty_k1_and_k3_by_hand():
    logprobs, ref = T([[-1.0, -2.0, -0.5]], dtype=F64), T([[-1.5, -2.0, 0.0]], dtype=F64)
    mask = torch.ones(1, 3)
    close(kl_penalty(logprobs, ref, mask, "k1"), [[0.5, 0.0, -0.5]])  # d = logp - logp_ref
    # k3 = (r - 1) - ln r with r = p_ref / p: r = e^-0.5 -> 0.60653 - 1 + 0.5; r = 1 -> 0; r = e^0.5 -> 1.64872 - 1 - 0.5
    close(kl_penalty(logprobs, ref, mask, "k3"), [[math.exp(-0.5) - 0.5, 0.0, math.exp(0.5) - 1.5]])


def test_k3_is_never_negative_and_both_vanish_for_equal_policies():
    gen, mask = random_right_padded(batch=8, length=10, seed=9)
    logp = -torch.rand(mask.shape, generator=gen) * 5
    ref = -torch.rand(mask.shape, generator=gen) * 5
    k3 = kl_penalty(logp, ref, mask, "k3")
    assert (k3 >= 0).all()
    r = torch.exp(ref - logp)
    close(k3, torch.where(mask, (r - 1) - torch.log(r), 0), atol=1e-5)
    for estimator in ("k1", "k3"):
        close(kl_penalty(logp, logp, mask, estimator), torch.zeros(mask.shape))
        padded = kl_penalty(
            with_padding(logp, mask, float("nan")), with_padding(ref, mask, 3.0), mask, estimator
        )
        close(padded, kl_penalty(logp, ref, mask, estimator))
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(logp, ref, mask, "k2")


def test_token_rewards_by_hand():
    kl = T([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]], dtype=F64)
    rewards = token_rewards(T([1.0, 2.0]), kl, beta=0.5, mask=T([[1, 1, 1], [1, 1, 0]]))
    # -0.5 * KL everywhere; score on the last real token: row 0 at t=2, row 1 at t=1; padding 0
    close(rewards, [[-0.05, -0.1, -0.15 + 1.0], [-0.2, -0.25 + 2.0, 0.0]])


def test_token_rewards_rejects_empty_rows_and_bad_shapes():
    with pytest.raises(ValueError, match=r"rows \[1\] have no response token"):
        token_rewards(T([1.0, 2.0]), torch.zeros(2, 2), 0.1, T([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match="score has shape"):
        token_rewards(T([1.0]), torch.zeros(2, 2), 0.1, torch.ones(2, 2))
    with pytest.raises(ValueError, match="right-padded"):
        token_rewards(T([1.0]), torch.zeros(1, 2), 0.1, T([[0, 1]]))


def test_shaping_by_hand():
    score, finished, length = T([1.0, 2.0, 3.0]), T([True, False, False]), T([2, 4, 10])
    close(shaping(score, finished, length, length_penalty=0.1), [0.8, 1.6, 2.0])  # - 0.1 * length
    # subtract: unfinished rows lose 1 more
    close(shaping(score, finished, length, no_eos_penalty=1.0, length_penalty=0.1), [0.8, 0.6, 1.0])
    # replace: unfinished rows become -1 whatever their score
    close(shaping(score, finished, length, no_eos_penalty=1.0, no_eos_mode="replace"), [1.0, -1.0, -1.0])
    close(shaping(score, finished, length), score)
    with pytest.raises(ValueError, match=">= 0"):
        shaping(score, finished, length, no_eos_penalty=-1.0)
    with pytest.raises(ValueError, match="no_eos_mode"):
        shaping(score, finished, length, no_eos_penalty=1.0, no_eos_mode="zero")


def test_is_finite_batch():
    assert is_finite_batch(T([1.0, 2.0]), T([[0.0]]))
    assert not is_finite_batch(T([1.0]), T([float("nan")]))
    assert not is_finite_batch(T([-float("inf")]))
    with pytest.raises(ValueError, match="at least one"):
        is_finite_batch()
