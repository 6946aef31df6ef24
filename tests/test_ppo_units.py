"""The PPO stage's pieces on hand-computed values and very small in-process models (fast)."""

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from basemodel import TINY_TOKENIZER_DIR
from basemodel.loading import load_causal_lm, load_sequence_classifier
from chat.dialog import PromptRecord
from chat.format import ChatEncoder
from generation import HFGenerator, SamplingParams
from pipeline.config import ModelConfig, PeftConfig
from ppo.checkpoint import checkpoints, last_checkpoint, load_checkpoint, save_checkpoint
from ppo.config import check_attention_for_layout, check_train_config
from ppo.ppo_models import ValueModel, freeze, no_dropout, reference_model, token_logprobs
from ppo.ppo_prompts import iteration_prompts, prompt_pools, split_heldout
from ppo.ppo_scoring import EarlyStopping, SharedPromptScorer, shared_prefix_lengths
from ppo.rewards import RunningMoments
from ppo.rollout import (
    baselined,
    calibrate_value_head,
    collect_rollout,
    finish_rollout,
    first_fit_decreasing,
    lays_out_packed,
    out_of_inference_mode,
    pack_rows,
    pack_sequences,
    packing_pays,
    policy_logprobs,
    recorded_logprobs,
    rollout_forwards,
    sequence_scores,
    value_estimates,
    whiten_scores,
)
from ppo.trainer import Learner, make_optimizer, mini_batches, ppo_update
from reward.scoring import RewardScorer

T = torch.tensor
VOCAB = 64
SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


def train_cfg(**overrides):
    values = dict(
        temperature=1.0, clip=0.2, value_clip=0.2, gamma=1.0, lam=0.95, kl_beta=0.01, kl_estimator="k1",
        whiten="running", safety_threshold=0.15, no_eos_penalty=None, no_eos_mode="subtract",
        length_penalty=0.0, ppo_epochs=1, mini_batch_size=2, micro_batch_size=1, max_grad_norm=1.0,
        adam_beta1=0.9, adam_beta2=0.95, adam_eps=1e-5, weight_decay=0.1, lr=1e-2, layout="auto",
        baseline="none", samples_per_prompt=1,
    )  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


class NoAccelerator:
    """What the update uses of accelerate's Accelerator, for one process."""

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, params, max_norm):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def small_models(seed=0, peft=None):
    policy = no_dropout(load_causal_lm(SMALL, peft, seed=seed, vocab_size=VOCAB))
    value = ValueModel(
        no_dropout(load_sequence_classifier(SMALL, None, seed=seed + 1, pad_token_id=0, vocab_size=VOCAB))
    )
    return policy, value


def small_batch():
    prompts = [[1, 5, 6, 7], [1, 9]]
    answers = [[10, 11, 2], [12, 13, 14, 15]]
    return pack_sequences(prompts, answers, pad_id=0, eos_id=2)


def packing_batch():
    """4 rows of 11, 6, 4 and 4 tokens: packed into 3 rows of 11 columns, ending in 0, 1 and 7 columns of
    filler."""
    prompts = [[1, 5, 6, 7, 8, 9, 3, 4], [1, 9], [1, 5], [1, 6, 7]]
    answers = [[10, 11, 2], [12, 13, 14, 15], [16, 2], [17]]
    return pack_sequences(prompts, answers, pad_id=0, eos_id=2)


# ---------------------------------------------------------------- batch layout


def test_pack_sequences_by_hand():
    batch = pack_sequences([[1, 5, 6], [1, 7]], [[8, 2], [9, 10, 11]], pad_id=0, eos_id=2)
    assert batch.input_ids.tolist() == [[1, 5, 6, 8, 2, 0], [0, 1, 7, 9, 10, 11]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 4], [0, 0, 1, 2, 3, 4]]
    assert batch.response_ids.tolist() == [[8, 2, 0], [9, 10, 11]]
    assert batch.response_mask.tolist() == [[True, True, False], [True, True, True]]
    assert batch.finished.tolist() == [True, False]
    assert batch.width == 3


def test_pack_sequences_rejects_empty_answers():
    with pytest.raises(ValueError, match=r"answers \[1\] have no tokens"):
        pack_sequences([[1], [1]], [[2], []], pad_id=0, eos_id=2)


def test_rows_cut_columns_that_are_padding_in_every_chosen_row():
    batch = pack_sequences([[1, 5, 6], [1, 7]], [[8, 2], [9, 10, 11]], pad_id=0, eos_id=2)
    first = batch.rows(T([0]))
    assert first.input_ids.tolist() == [[1, 5, 6, 8, 2]] and first.width == 2
    second = batch.rows(T([1]))
    assert second.input_ids.tolist() == [[1, 7, 9, 10, 11]]
    assert second.position_ids.tolist() == [[0, 1, 2, 3, 4]]


def test_first_fit_decreasing_by_hand():
    # Longest first: 5 -> bin 0 (room 1), 4 -> bin 1 (2), 3 -> bin 2 (3), 2 -> bin 1 (0), 1 -> bin 0 (0).
    assert first_fit_decreasing([5, 3, 4, 2, 1], capacity=6) == [[0, 4], [2, 3], [1]]
    assert first_fit_decreasing([2, 2], capacity=4) == [[0, 1]]
    with pytest.raises(ValueError, match="7 tokens does not fit bins of 6"):
        first_fit_decreasing([7, 1], capacity=6)


def test_pack_rows_by_hand():
    # Sequences of 6, 2 and 3 tokens in rows of 6 columns: row 0 alone, then row 2 and row 1 together.
    batch = pack_sequences([[1, 5, 6, 7], [1], [4]], [[8, 2], [9], [10, 11]], pad_id=0, eos_id=2)
    packed = pack_rows(batch)
    assert packed.input_ids.tolist() == [[1, 5, 6, 7, 8, 2], [4, 10, 11, 1, 9, 0]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 1, 0]]
    assert packed.attention_mask is None  # no prompt repeats: position ids keep the sequences apart
    assert packed.answer_at.tolist() == [4, 5, 10, 7, 8]  # row by row, in the flattened (2, 6) tensor
    assert packed.input_ids.flatten()[packed.answer_at].tolist() == [8, 2, 9, 10, 11]
    assert packed.reads.tolist() == [3, 4, 9, 6, 7]  # each answer token's predecessor
    # Their predicting columns (3, 4, 3, 0, 1) go through the lm_head once each: kept 0, 1, 3, 4.
    assert packed.kept_columns.tolist() == [0, 1, 3, 4]
    assert packed.answer_in_kept.tolist() == [2, 3, 6, 4, 5]
    assert packed.unpack(T([1.0, 2.0, 3.0, 4.0, 5.0])).tolist() == [[1.0, 2.0], [3.0, 0.0], [4.0, 5.0]]


def test_samples_of_one_prompt_share_it_by_hand():
    # Rows 0 and 1 answer the prompt [1, 5]: one copy of it, then answer 0 (8, 2), then answer 1 (9), which
    # sees the prompt and itself only and takes the positions it would have alone (2, not 4).
    batch = pack_sequences([[1, 5], [1, 5], [1, 7]], [[8, 2], [9], [10, 11, 2]], pad_id=0, eos_id=2)
    packed = pack_rows(batch)
    assert packed.input_ids.tolist() == [[1, 5, 8, 2, 9], [1, 7, 10, 11, 2]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 3, 4]]
    t, f = True, False
    assert packed.attention_mask[:, 0].tolist() == [
        [[t, f, f, f, f], [t, t, f, f, f], [t, t, t, f, f], [t, t, t, t, f], [t, t, f, f, t]],
        [[t, f, f, f, f], [t, t, f, f, f], [t, t, t, f, f], [t, t, t, t, f], [t, t, t, t, t]],
    ]
    assert packed.answer_at.tolist() == [2, 3, 4, 7, 8, 9]
    # Both answers' first tokens are predicted by the prompt's last token (column 1).
    assert packed.reads.tolist() == [1, 2, 1, 6, 7, 8]
    assert packed.kept_columns.tolist() == [1, 2, 3]
    assert packed.answer_in_kept.tolist() == [0, 1, 0, 3, 4, 5]
    assert packing_pays(batch)  # 3 rows -> 2, and a third of the tokens fewer


def test_packed_forwards_equal_the_padded_ones():
    """Packed sequences see only themselves (not the sequence before them in their row, nor the filler after
    it): the same log-probs, entropies and values as the padded batch."""
    policy, value = small_models()
    batch = packing_batch()
    assert pack_rows(batch).input_ids.shape == (3, 11)
    mask = batch.response_mask
    with torch.no_grad():
        padded_lp, padded_entropy = policy_logprobs(policy, batch, 0.7, entropy=True)
        packed_lp, packed_entropy = policy_logprobs(policy, batch, 0.7, layout="packed", entropy=True)
        torch.testing.assert_close(packed_lp[mask], padded_lp[mask], atol=1e-5, rtol=0)
        torch.testing.assert_close(packed_entropy[mask], padded_entropy[mask], atol=1e-5, rtol=0)
        assert (packed_lp[~mask] == 0).all() and (packed_entropy[~mask] == 0).all()
        assert padded_entropy.min() > 0 and policy_logprobs(policy, batch, 0.7)[1] is None
        torch.testing.assert_close(
            value_estimates(value, batch, layout="packed")[mask],
            value_estimates(value, batch)[mask],
            atol=1e-5,
            rtol=0,
        )
    reference = freeze(load_causal_lm(SMALL, None, seed=3, vocab_size=VOCAB))
    whole = rollout_forwards(policy, reference, value, batch, 1.0)
    by_row = rollout_forwards(policy, reference, value, batch, 1.0, layout="packed", rows_per_forward=1)
    for name in ("logprobs", "ref_logprobs", "values", "entropy"):
        torch.testing.assert_close(getattr(by_row, name)[mask], getattr(whole, name)[mask], atol=1e-5, rtol=0)


def test_shared_prompt_forwards_and_gradients_equal_the_padded_ones():
    """Four samples of two prompts (different lengths), packed with one copy of each prompt: the same log-probs,
    values and gradients as the padded batch, where every row holds its own copy."""
    prompts = [[1, 5, 6, 7]] * 2 + [[1, 9]] * 2
    answers = [[10, 11, 2], [12], [13, 14, 15, 2], [16, 17]]
    batch = pack_sequences(prompts, answers, pad_id=0, eos_id=2)
    assert pack_rows(batch).attention_mask is not None
    mask = batch.response_mask
    results = {}
    for layout in ("padded", "packed"):
        policy, value = small_models()
        logprobs, entropy = policy_logprobs(policy, batch, 0.7, layout, entropy=True)
        values = value_estimates(value, batch, layout)
        (logprobs[mask].sum() + values[mask].square().sum()).backward()
        grads = [p.grad.clone() for p in [*policy.parameters(), *value.parameters()] if p.grad is not None]
        results[layout] = (logprobs[mask], entropy[mask], values[mask], grads)
    for padded, packed in zip(results["padded"][:3], results["packed"][:3]):
        torch.testing.assert_close(packed, padded, atol=1e-5, rtol=0)
    assert len(results["padded"][3]) == len(results["packed"][3]) > 0
    for padded, packed in zip(results["padded"][3], results["packed"][3]):
        torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-4)


def test_generation_records_the_old_log_probs_the_policy_forward_would_compute():
    """PPO's old log-probs and entropies come from the decoding that drew the answers (two samples a prompt,
    prompts of different lengths); the rollout then leaves the policy forward out."""
    encoder = ChatEncoder.from_path(TINY_TOKENIZER_DIR)
    policy = no_dropout(load_causal_lm(SMALL, None, seed=0, vocab_size=encoder.tokenizer.vocab_size))
    dialogs = [
        [{"role": "user", "content": text}] for text in ("Hi", "Name a planet close to the sun, please.")
    ]
    sampled = HFGenerator(policy, encoder, batch_size=4).generate(
        dialogs, SamplingParams(max_new_tokens=6, temperature=0.7, num_samples=2, seed=1, logprobs=True)
    )
    completions = [c for samples in sampled for c in samples]
    prompts = [encoder.encode_for_generation(d) for d in dialogs for _ in range(2)]
    batch = pack_sequences(prompts, [c.token_ids for c in completions], 0, encoder.eos_id)
    recorded = recorded_logprobs(completions, batch)
    mask = batch.response_mask
    with torch.no_grad():
        logprobs, entropy = policy_logprobs(policy, batch, 0.7, entropy=True)
    torch.testing.assert_close(recorded[0][mask], logprobs[mask], atol=1e-4, rtol=0)
    torch.testing.assert_close(recorded[1][mask], entropy[mask], atol=1e-4, rtol=0)
    assert (recorded[0][~mask] == 0).all()

    class NoForward(torch.nn.Module):
        def forward(self, *args, **kwargs):
            raise AssertionError("the policy forward ran although generation recorded its log-probs")

    value = ValueModel(
        load_sequence_classifier(SMALL, None, seed=1, pad_token_id=0, vocab_size=policy.vocab_size)
    )
    forwards = rollout_forwards(NoForward(), freeze(policy), value, batch, 0.7, recorded=recorded)
    assert torch.equal(forwards.logprobs, recorded[0]) and torch.equal(forwards.entropy, recorded[1])
    assert recorded_logprobs([*completions[:3], replace(completions[3], token_logprobs=None)], batch) is None


def test_packing_pays_when_it_saves_rows_and_a_typo_is_named():
    assert packing_pays(packing_batch())  # 4 rows -> 3
    # 7 and 6 tokens: no two fit in 7 columns, so packing would only add work.
    assert not packing_pays(small_batch())
    assert lays_out_packed("auto", packing_batch()) and not lays_out_packed("auto", small_batch())
    assert lays_out_packed("packed", small_batch()) and not lays_out_packed("padded", packing_batch())
    with pytest.raises(ValueError, match="train.layout: unknown 'pack'"):
        lays_out_packed("pack", small_batch())


def test_token_logprobs_by_hand():
    logits = T([[[0.0, math.log(3.0)]]])
    close = pytest.approx
    assert token_logprobs(logits, T([[1]]), 1.0).item() == close(math.log(0.75))
    # T = 2: softmax([0, ln 3 / 2]) = [1, sqrt 3] / (1 + sqrt 3)
    assert token_logprobs(logits, T([[0]]), 2.0).item() == close(-math.log(1 + math.sqrt(3)))
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(logits, T([[0]]), 0.0)


def test_padded_logprobs_and_values_equal_those_of_each_row_alone():
    """Left padding with position ids from the mask: a row's numbers do not depend on its batch-mates."""
    policy, value = small_models()
    batch = small_batch()
    with torch.no_grad():
        together, _ = policy_logprobs(policy, batch, 1.0)
        values = value(batch.input_ids, batch.attention_mask, batch.position_ids, batch.width)
        for row in range(2):
            alone = batch.rows(T([row]))
            lengths = int(alone.response_mask.sum())
            alone_lp, _ = policy_logprobs(policy, alone, 1.0)
            torch.testing.assert_close(alone_lp[0, :lengths], together[row, :lengths], atol=1e-5, rtol=0)
            alone_v = value(alone.input_ids, alone.attention_mask, alone.position_ids, alone.width)
            torch.testing.assert_close(alone_v[0, :lengths], values[row, :lengths], atol=1e-5, rtol=0)
        full = policy(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
        expected = torch.log_softmax(full.logits[0, 3:5], -1).gather(-1, T([[10], [11]])).squeeze(-1)
        torch.testing.assert_close(together[0, :2], expected, atol=1e-5, rtol=0)


def test_values_read_the_state_before_each_answer_token():
    """V(s_t) is the baseline for token t, so it may not see token t: changing answer token 1 of a row
    leaves V at tokens 0 and 1 as they were and moves it from token 2 on, padded and packed alike."""
    _, value = small_models()
    prompts = [[1, 5, 6, 7], [9], [1]]
    batch = pack_sequences(prompts, [[10, 11, 2], [12, 13, 14, 15], [16]], pad_id=0, eos_id=2)
    changed = pack_sequences(prompts, [[10, 11, 2], [12, 20, 14, 15], [16]], pad_id=0, eos_id=2)
    assert pack_rows(batch).input_ids.shape[0] == 2  # row 2 follows row 1 in a packed row
    with torch.no_grad():
        for layout in ("padded", "packed"):
            before, after = value_estimates(value, batch, layout), value_estimates(value, changed, layout)
            torch.testing.assert_close(after[0, :3], before[0, :3])  # the other rows
            torch.testing.assert_close(after[2, :1], before[2, :1])
            torch.testing.assert_close(after[1, :2], before[1, :2])
            assert (after[1, 2:] - before[1, 2:]).abs().min() > 1e-6
        # V(s_0) is read at the last prompt token: the classifier's score of the prompt alone.
        prompt_only = value.classifier(input_ids=T([[9]])).logits[0, 0]
        torch.testing.assert_close(value_estimates(value, batch)[1, 0], prompt_only, atol=1e-5, rtol=0)


def test_value_head_calibration_maps_reward_scores_to_whitened_ones_and_is_saved():
    _, value = small_models()
    batch = small_batch()
    with torch.no_grad():
        raw = value_estimates(value, batch)
        calibrate_value_head(value, T([1.0, 3.0, 5.0]))  # mean 3, std 2
        torch.testing.assert_close(value_estimates(value, batch), (raw - 3.0) / 2.0)
        _, fresh = small_models()
        fresh.load_state_dict(value.state_dict())  # the two numbers travel with the weights
        torch.testing.assert_close(value_estimates(fresh, batch), (raw - 3.0) / 2.0)
        _, untouched = small_models()
        calibrate_value_head(untouched, T([1.0, float("nan")]))
        calibrate_value_head(untouched, T([2.0, 2.0]))  # no spread: nothing to scale by
        torch.testing.assert_close(value_estimates(untouched, batch), raw)
    with pytest.raises(ValueError, match="positive std"):
        value.calibrate(0.0, 0.0)


def test_a_calibrating_rollout_reads_its_values_from_the_calibrated_head():
    """collect_rollout(calibrate=True) calibrates before the forwards, so the first iteration's values (and so
    its advantages) already come from the calibrated head; without it the head is left alone."""
    policy, value = small_models()
    reference = freeze(small_models()[0])
    batch, score = small_batch(), T([1.0, 5.0])  # mean 3, std 2 * sqrt(2)
    unrecorded = [SimpleNamespace(token_logprobs=None)] * 2  # the policy forward gives the old log-probs
    with torch.no_grad():
        raw = value_estimates(value, batch)
    plain, _ = collect_rollout(
        policy, reference, value, batch, unrecorded, score, RunningMoments(), train_cfg()
    )
    calibrated, _ = collect_rollout(
        policy, reference, value, batch, unrecorded, score, RunningMoments(), train_cfg(), calibrate=True
    )
    mask = batch.response_mask
    torch.testing.assert_close(plain.values[mask], raw[mask])
    torch.testing.assert_close(calibrated.values[mask], ((raw - 3.0) / (2.0 * math.sqrt(2)))[mask])


def test_the_per_prompt_baseline_whitens_answers_against_their_siblings():
    """Two prompts, two answers each: prompt 2's RM level (10-14) no longer counts, only each answer's
    place among its prompt's answers. Centred [-1, 1, -2, 2]; unbiased std sqrt(10 / 3)."""
    score = T([1.0, 3.0, 10.0, 14.0])
    centred = baselined(score, train_cfg(baseline="prompt_mean", samples_per_prompt=2))
    torch.testing.assert_close(centred, T([-1.0, 1.0, -2.0, 2.0]))
    whitened, _ = whiten_scores(centred, RunningMoments(), "running")
    torch.testing.assert_close(whitened, T([-1.0, 1.0, -2.0, 2.0]) / math.sqrt(10 / 3), atol=1e-4, rtol=0)
    assert baselined(score, train_cfg()) is score  # baseline none: the paper's reward
    with pytest.raises(ValueError, match="groups of 3"):
        baselined(score, train_cfg(baseline="prompt_mean", samples_per_prompt=3))
    with pytest.raises(ValueError, match=">= 2 samples"):
        baselined(score, train_cfg(baseline="prompt_mean", samples_per_prompt=1))


# ---------------------------------------------------------------- scores and rewards


def test_sequence_scores_follow_the_llama2_rule_and_penalties():
    batch = pack_sequences([[1]] * 3, [[5, 2], [5, 6], [5, 6, 2]], pad_id=0, eos_id=2)
    helpful, safety = T([1.0, 2.0, 3.0]), T([-3.0, 0.5, 0.5])  # sigmoid(-3) = 0.047 < 0.15
    is_safety = T([False, False, True])
    score, used = sequence_scores(helpful, safety, is_safety, batch, train_cfg())
    assert used.tolist() == [True, False, True]
    assert score.tolist() == [-3.0, 2.0, 0.5]
    score, used = sequence_scores(
        helpful, None, is_safety, batch, train_cfg(no_eos_penalty=1.0, length_penalty=0.5)
    )
    # helpfulness only; lengths 2, 2, 3; the second answer never ended
    assert used.tolist() == [False, False, False]
    assert score.tolist() == pytest.approx([1.0 - 1.0, 2.0 - 1.0 - 1.0, 3.0 - 1.5])


def test_whiten_scores_running_keeps_statistics_and_batch_does_not():
    score = T([1.0, 3.0])
    whitened, moments = whiten_scores(score, RunningMoments(), "running")
    assert moments.count == 2 and moments.mean == 2.0
    assert whitened.tolist() == pytest.approx(
        [-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-6
    )  # unbiased std sqrt 2
    whitened, same = whiten_scores(score, moments, "batch")
    assert same is moments
    assert whitened.tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-6)


def test_non_finite_scores_skip_the_rollout_and_keep_the_statistics():
    policy, value = small_models()
    batch = small_batch()
    forwards = rollout_forwards(
        policy, freeze(load_causal_lm(SMALL, None, seed=0, vocab_size=VOCAB)), value, batch, 1.0
    )
    moments = RunningMoments(count=4, mean=1.0, var=2.0)
    rollout, after = finish_rollout(batch, forwards, T([float("nan"), 1.0]), moments, train_cfg())
    assert rollout is None and after is moments
    rollout, after = finish_rollout(batch, forwards, T([0.0, 1.0]), moments, train_cfg())
    assert rollout is not None and after.count == 6
    # The reference is the starting policy: KL 0, so the reward is the whitened score at the last token.
    assert rollout.kl.abs().max().item() < 1e-6
    assert rollout.rewards[0, 2].item() == pytest.approx(rollout.whitened[0].item(), abs=1e-6)
    assert rollout.rewards[1, 3].item() == pytest.approx(rollout.whitened[1].item(), abs=1e-6)


# ---------------------------------------------------------------- the update


def make_rollout(policy, value, reference):
    batch = small_batch()
    forwards = rollout_forwards(policy, reference, value, batch, 1.0)
    rollout, _ = finish_rollout(batch, forwards, T([-1.0, 1.0]), RunningMoments(), train_cfg())
    return out_of_inference_mode(rollout)


def learner_for(policy, value, cfg):
    return Learner(
        policy,
        value,
        make_optimizer(policy, cfg.lr, cfg),
        make_optimizer(value, cfg.lr, cfg),
        NoAccelerator(),
    )


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_an_update_moves_the_weights_and_a_nan_update_does_not():
    cfg = train_cfg()
    policy, value = small_models()
    reference = freeze(load_causal_lm(SMALL, None, seed=0, vocab_size=VOCAB))
    rollout = make_rollout(policy, value, reference)
    learner = learner_for(policy, value, cfg)

    poisoned = make_rollout(policy, value, reference)
    poisoned.advantages[0, 0] = float("nan")
    poisoned.advantages[1, 0] = float("inf")
    before_policy, before_value = snapshot(policy), snapshot(value)
    stats = ppo_update(learner, poisoned, cfg, torch.Generator().manual_seed(0))
    assert stats["train/skipped_nonfinite"] == 1 and stats["train/steps"] == 0
    for name, tensor in policy.state_dict().items():
        assert torch.equal(tensor, before_policy[name]), name
    for name, tensor in value.state_dict().items():
        assert torch.equal(tensor, before_value[name]), name
    assert all(p.grad is None for p in policy.parameters())

    stats = ppo_update(learner, rollout, cfg, torch.Generator().manual_seed(0))
    assert stats["train/steps"] == 1 and stats["train/skipped_nonfinite"] == 0
    assert stats["train/clip_fraction"] == 0.0  # the first step's ratio is exactly 1 (no dropout)
    assert stats["train/approx_kl"] == pytest.approx(0.0, abs=1e-7)
    changed = [n for n, t in policy.state_dict().items() if not torch.equal(t, before_policy[n])]
    assert changed and all(torch.isfinite(t).all() for t in policy.state_dict().values())
    assert any(not torch.equal(t, before_value[n]) for n, t in value.state_dict().items())


def test_mini_batches_cover_every_row_once():
    parts = mini_batches(10, 4, torch.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


def test_optimizer_takes_the_configured_adamw_settings():
    policy, _ = small_models()
    opt = make_optimizer(policy, 1e-6, train_cfg())
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        1e-6,
        (0.9, 0.95),
        1e-5,
        0.1,
    )
    assert group["fused"]  # the one-pass kernel where the parameters' device has it (CPU, CUDA)


def test_lora_reference_is_the_same_model_with_adapters_disabled():
    lora = PeftConfig(method="lora", r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    policy = no_dropout(load_causal_lm(SMALL, lora, seed=0, vocab_size=VOCAB))
    base = load_causal_lm(SMALL, None, seed=0, vocab_size=VOCAB)  # same seed: the same base weights
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)  # trained adapters
    batch = small_batch()
    with torch.no_grad():
        adapted, _ = policy_logprobs(policy, batch, 1.0)
        with reference_model(policy, None) as ref:
            assert ref is policy  # no second copy of the weights
            ref_lp, _ = policy_logprobs(ref, batch, 1.0)
        plain, _ = policy_logprobs(base, batch, 1.0)
    mask = batch.response_mask
    torch.testing.assert_close(ref_lp[mask], plain[mask], atol=1e-5, rtol=0)
    assert (adapted[mask] - plain[mask]).abs().max() > 1e-3
    after, _ = policy_logprobs(policy, batch, 1.0)
    torch.testing.assert_close(after[mask], adapted[mask])  # adapters are back on afterwards
    with pytest.raises(ValueError, match="no LoRA adapters"), reference_model(base, None):
        pass


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_restores_weights_optimizer_rng_and_state(tmp_path):
    cfg = train_cfg()
    policy, value = small_models()
    reference = freeze(load_causal_lm(SMALL, None, seed=0, vocab_size=VOCAB))
    learner = learner_for(policy, value, cfg)
    shuffle = torch.Generator().manual_seed(3)
    ppo_update(learner, make_rollout(policy, value, reference), cfg, shuffle)
    optimizers = {"policy": learner.policy_optimizer, "value": learner.value_optimizer}
    state = {
        "moments": RunningMoments(count=8, mean=0.5, var=1.5).state_dict(),
        "history": [{"iteration": 0}],
    }
    for iteration in range(3):
        path = save_checkpoint(tmp_path, iteration, policy, value, optimizers, state, shuffle, keep=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["iter-1", "iter-2"]
    assert not list(tmp_path.glob(".tmp-*"))
    expected_rand, expected_perm = torch.rand(3), torch.randperm(5, generator=shuffle)

    fresh_policy, fresh_value = small_models(seed=7)
    fresh = learner_for(fresh_policy, fresh_value, cfg)
    fresh_optimizers = {"policy": fresh.policy_optimizer, "value": fresh.value_optimizer}
    other = torch.Generator().manual_seed(99)
    torch.manual_seed(1234)
    loaded = load_checkpoint(last_checkpoint(tmp_path), fresh_policy, fresh_value, fresh_optimizers, other)
    assert loaded["iteration"] == 2 and RunningMoments.from_state_dict(loaded["moments"]).count == 8
    for name, tensor in policy.state_dict().items():
        assert torch.equal(fresh_policy.state_dict()[name], tensor), name
    for name, tensor in value.state_dict().items():
        assert torch.equal(fresh_value.state_dict()[name], tensor), name
    saved_opt = learner.policy_optimizer.state_dict()["state"]
    restored_opt = fresh.policy_optimizer.state_dict()["state"]
    assert saved_opt.keys() == restored_opt.keys()
    for key in saved_opt:
        assert torch.equal(saved_opt[key]["exp_avg_sq"], restored_opt[key]["exp_avg_sq"])
    assert torch.equal(torch.rand(3), expected_rand)
    assert torch.equal(torch.randperm(5, generator=other), expected_perm)
    for name in ("optimizer.pt", "rng.pt"):  # plain containers only
        torch.load(path / name, weights_only=True)


def test_last_checkpoint_passes_over_incomplete_ones(tmp_path):
    good = tmp_path / "iter-1"
    good.mkdir()
    for name in ("policy.safetensors", "value.safetensors", "optimizer.pt", "rng.pt"):
        (good / name).write_bytes(b"x")
    (good / "state.json").write_text(json.dumps({"iteration": 1}))
    broken = tmp_path / "iter-2"
    broken.mkdir()
    (broken / "state.json").write_text("{")
    (tmp_path / "iter-3").mkdir()
    assert last_checkpoint(tmp_path) == good


# ---------------------------------------------------------------- prompts, early stopping, config


def records(n_regular, n_safety):
    return [
        PromptRecord([{"role": "user", "content": f"q{i}"}], is_safety=i >= n_regular)
        for i in range(n_regular + n_safety)
    ]


def test_prompt_pools_and_iteration_mix():
    regular, safety, share = prompt_pools(records(30, 10), None)
    assert (len(regular), len(safety), share) == (30, 0, 0.0)
    regular, safety, share = prompt_pools(records(30, 10), 0.25)
    chosen = iteration_prompts(regular, safety, share, 16, seed=0, iteration=5)
    assert sum(r.is_safety for r in chosen) == 4 and len(chosen) == 16
    assert len({r.prompt[0]["content"] for r in chosen}) == 16  # without replacement
    assert chosen == iteration_prompts(
        regular, safety, share, 16, seed=0, iteration=5
    )  # resume draws the same
    assert chosen != iteration_prompts(regular, safety, share, 16, seed=0, iteration=6)
    with pytest.raises(ValueError, match="no prompt with is_safety true"):
        prompt_pools(records(5, 0), 0.5)


def test_heldout_split_is_disjoint_and_seeded():
    items = records(20, 0)
    train, held = split_heldout(items, 5, seed=0)
    assert len(train) == 15 and len(held) == 5
    assert {r.prompt[0]["content"] for r in train}.isdisjoint({r.prompt[0]["content"] for r in held})
    assert split_heldout(items, 5, seed=0) == (train, held)
    with pytest.raises(ValueError, match="heldout"):
        split_heldout(items, 20, seed=0)


def test_shared_prefix_lengths_by_hand():
    sequences = [[1, 5, 6, 8, 2], [1, 5, 6, 9, 2], [1, 5, 7, 2], [1, 5, 6, 8, 2], [1, 4, 2]]
    # Key a: [1, 5] in common with the third; key b: identical sequences keep their last token; key c alone.
    assert shared_prefix_lengths(sequences, ["a", "a", "a", "b", "c"]) == [2, 2, 2, 4, 2]
    assert shared_prefix_lengths(sequences[:2], ["a", "a"]) == [3, 3]


def test_the_shared_prompt_scorer_gives_the_padded_scorers_scores():
    encoder = ChatEncoder.from_path(TINY_TOKENIZER_DIR)
    vocab = encoder.tokenizer.vocab_size
    rm = freeze(load_sequence_classifier(SMALL, None, seed=4, pad_token_id=0, vocab_size=vocab))
    long = [{"role": "user", "content": "A longer question, with more words in it than the other one?"}]
    short = [{"role": "user", "content": "Why?"}]
    dialogs = [long, long, long, short, short, long]
    answers = ["Because it is.", "Because it is not.", "No.", "Because.", "Because.", "Yes, it is."]
    padded = RewardScorer(rm, encoder, batch_size=4).score(dialogs, answers)
    shared = SharedPromptScorer(rm, encoder, batch_size=4).score(dialogs, answers)
    torch.testing.assert_close(shared, padded, atol=1e-5, rtol=0)
    assert padded.std() > 1e-4  # the answers do score differently


def test_early_stopping_counts_evaluations_without_improvement():
    stopping = EarlyStopping().update(1.0, 0.0).update(0.9, 0.0).update(1.0, 0.0)
    assert (stopping.best, stopping.bad_evals, stopping.exhausted(2)) == (1.0, 2, True)
    assert EarlyStopping(**stopping.state_dict()).update(1.5, 0.1).bad_evals == 0


def test_config_checks_name_the_key():
    base = OmegaConf.create(
        dict(prompts_per_iteration=32, mini_batch_size=16, micro_batch_size=8, value_init="reward",
             whiten="running", kl_max=1.0, iterations=1, save_every=1, layout="auto", samples_per_prompt=1,
             baseline="none")
    )  # fmt: skip
    check_train_config(base)
    check_train_config(OmegaConf.merge(base, {"samples_per_prompt": 3, "mini_batch_size": 32}))  # 96 rows
    for key, bad, message in [
        ("mini_batch_size", 12, "prompts_per_iteration"),
        ({"samples_per_prompt": 3, "mini_batch_size": 64}, None, "= 96 rows"),
        ("samples_per_prompt", 0, "train.samples_per_prompt"),
        ("baseline", "group", "train.baseline: 'group'"),
        ({"baseline": "prompt_mean"}, None, "samples_per_prompt >= 2"),
        ("micro_batch_size", 5, "micro_batch_size"),
        ("value_init", "random", "value_init"),
        ("whiten", "never", "whiten"),
        ("layout", "pack", "train.layout: 'pack'"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_train_config(OmegaConf.merge(base, key if isinstance(key, dict) else {key: bad}))


def test_shared_prompts_refuse_flash_attention_by_name():
    train = OmegaConf.create(dict(samples_per_prompt=4, layout="auto"))
    with pytest.raises(ValueError, match="model.attn_implementation=sdpa or train.layout=padded"):
        check_attention_for_layout(train, ModelConfig(attn_implementation="flash_attention_2"))
    check_attention_for_layout(train, ModelConfig(attn_implementation="sdpa"))
    padded = OmegaConf.merge(train, {"layout": "padded"})
    check_attention_for_layout(padded, ModelConfig(attn_implementation="flash_attention_2"))
    one = OmegaConf.merge(train, {"samples_per_prompt": 1})  # nothing shared: no mask
    check_attention_for_layout(one, ModelConfig(attn_implementation="flash_attention_2"))


@pytest.mark.parametrize(
    ("model", "beta"), [("llama2-7b", 0.01), ("llama2-13b", 0.01), ("llama2-70b", 0.005)]
)
def test_paper_configs_compose_with_the_paper_values(model, beta):
    from hydra import compose, initialize_config_dir

    import ppo.config  # noqa: F401

    conf = str(TINY_TOKENIZER_DIR.parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base=None):
        cfg = compose("ppo", overrides=[f"model={model}"])
    t = cfg.train
    assert (t.lr, t.adam_beta1, t.adam_beta2, t.adam_eps, t.weight_decay, t.max_grad_norm) == (
        1e-6, 0.9, 0.95, 1e-5, 0.1, 1.0,
    )  # fmt: skip
    assert (t.prompts_per_iteration, t.mini_batch_size, t.clip, t.kl_beta) == (512, 64, 0.2, beta)


def test_tiny_settings_differ_by_experiment_and_the_command_line_wins():
    from hydra import compose, initialize_config_dir

    import ppo.config  # noqa: F401

    conf = str(TINY_TOKENIZER_DIR.parents[1] / "conf")
    keys = ("prompts_per_iteration", "mini_batch_size", "lr", "samples_per_prompt", "baseline", "value_init")
    with initialize_config_dir(config_dir=conf, version_base=None):
        plain = compose("ppo").train
        safety = compose("ppo", overrides=["+experiment=safety"]).train
        mine = compose("ppo", overrides=["+experiment=safety", "train.lr=3e-5"]).train
        unknown = compose("ppo")
    assert tuple(plain[k] for k in keys) == (32, 64, 5e-5, 4, "prompt_mean", "policy")
    assert tuple(safety[k] for k in keys) == (32, 64, 1e-4, 4, "prompt_mean", "policy")
    assert (safety.lr, mine.lr) == (1e-4, 3e-5)
    unknown.experiment = "harmless"
    with pytest.raises(Exception, match="experiment: 'harmless' has no PPO variant"):
        OmegaConf.resolve(unknown)
    check_train_config(plain)
    check_train_config(safety)


def test_the_oracle_curve_takes_fewer_answers_a_prompt_than_before_and_after():
    from hydra import compose, initialize_config_dir

    from ppo.train import curve_eval

    conf = str(TINY_TOKENIZER_DIR.parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base=None):
        cfg = compose("ppo", overrides=["eval.max_prompts=50"])
        mine = compose("ppo", overrides=["eval.curve_samples_per_prompt=3"])
        with pytest.raises(Exception, match="curve_sample_per_prompt"):
            compose("ppo", overrides=["eval.curve_sample_per_prompt=3"])
    curve = curve_eval(cfg.eval)
    # oracle.before / oracle.after keep conf/ppo.yaml's 8 answers a prompt (32 to a harmful request); the curve
    # asks every prompt twice
    assert (cfg.eval.samples_per_prompt, cfg.eval.harmful_samples_per_prompt) == (8, 32)
    assert (curve.samples_per_prompt, curve.harmful_samples_per_prompt) == (2, 2)
    assert (curve.max_prompts, curve.seed, curve.temperature) == (50, cfg.eval.seed, cfg.eval.temperature)
    assert curve_eval(mine.eval).samples_per_prompt == 3


def test_reward_models_are_chosen_under_reward_as_in_rejection_sampling():
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    import ppo.config  # noqa: F401

    conf = str(TINY_TOKENIZER_DIR.parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base=None):
        cfg = compose("ppo", overrides=["reward.helpfulness=/rm/h", "reward.empty_answer_score=-5"])
        assert (cfg.reward.helpfulness, cfg.reward.safety, cfg.reward.empty_answer_score) == (
            "/rm/h",
            None,
            -5.0,
        )
        with pytest.raises(ConfigCompositionException, match="helpfulness_rm"):
            compose("ppo", overrides=["helpfulness_rm=/rm/h"])


# ---------------------------------------------------------------- the loop learns


def ppo_loop(reward_of_tokens, iterations: int, seed: int = 0) -> list[float]:
    """Sample, score with ``reward_of_tokens(answer ids) -> float``, roll out and update, as ppo/train.py
    does (old log-probs from the decoding, running whitening, GAE, clipped losses); the mean reward of each
    iteration's answers."""
    torch.manual_seed(seed)
    encoder = ChatEncoder.from_path(TINY_TOKENIZER_DIR)
    vocab = encoder.tokenizer.vocab_size
    policy = no_dropout(load_causal_lm(SMALL, None, seed=seed, vocab_size=vocab))
    reference = freeze(load_causal_lm(SMALL, None, seed=seed, vocab_size=vocab))
    value = ValueModel(
        no_dropout(load_sequence_classifier(SMALL, None, seed=seed + 1, pad_token_id=0, vocab_size=vocab))
    )
    cfg = train_cfg(lr=1e-2, mini_batch_size=16, micro_batch_size=8, weight_decay=0.0)
    learner, moments = learner_for(policy, value, cfg), RunningMoments()
    generator, shuffle = HFGenerator(policy, encoder, batch_size=32), torch.Generator().manual_seed(seed)
    dialogs = [[{"role": "user", "content": f"Question {i}?"}] for i in range(8)]
    prompts = [encoder.encode_for_generation(d) for d in dialogs for _ in range(4)]
    means = []
    for iteration in range(iterations):
        params = SamplingParams(
            max_new_tokens=4, temperature=1.0, num_samples=4, seed=iteration, logprobs=True
        )
        completions = [c for samples in generator.generate(dialogs, params) for c in samples]
        batch = pack_sequences(prompts, [c.token_ids for c in completions], 0, encoder.eos_id)
        score = T([reward_of_tokens(c.token_ids) for c in completions])
        means.append(score.mean().item())
        rollout, moments = collect_rollout(policy, reference, value, batch, completions, score, moments, cfg)
        ppo_update(learner, out_of_inference_mode(rollout), cfg, shuffle)
    return means


@pytest.mark.slow
def test_ppo_raises_a_learnable_reward_and_lowers_its_negation():
    """End to end on a random tiny policy: the reward is the share of even token ids in the answer (about
    half at the start). PPO must raise it, and lower it when the reward is negated: a flipped sign, or
    advantages that never reach the sampled tokens' log-probs, fails it (a flipped policy-loss sign did)."""

    def even_share(ids):
        return sum(i % 2 == 0 for i in ids) / len(ids)

    up = ppo_loop(even_share, iterations=30)
    down = ppo_loop(lambda ids: -even_share(ids), iterations=30)
    first, last = (lambda m: sum(m[:5]) / 5), (lambda m: sum(m[-5:]) / 5)
    assert 0.3 < first(up) < 0.7 and 0.3 < -first(down) < 0.7
    assert last(up) > first(up) + 0.25, up
    assert -last(down) < -first(down) - 0.25, down
