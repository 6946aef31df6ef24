"""One PPO rollout: sample answers, score them, and turn the scores into per-token advantages.

Layout of a rollout batch: each row is its prompt left-padded to the widest prompt, followed by its answer
right-padded to the longest answer, so every answer starts at the same column and the answer positions are
the last ``width`` columns (the lm_head and value head only run there). Position ids come from the
attention mask, as in generation, so left padding does not shift positions between generation and training.

Everything is computed under ``torch.inference_mode``; tensors that the update step needs are cloned out
of it once at the end (inference tensors cannot be saved for backward).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import torch

from ppo.config import LAYOUTS
from ppo.losses import entropy_from_logits, gae, masked_mean, masked_whiten
from ppo.ppo_models import reference_model, response_logits, token_logprobs
from ppo.rewards import (
    RunningMoments,
    combine_rewards,
    is_finite_batch,
    kl_penalty,
    logit_of_sigmoid,
    minus_prompt_mean,
    shaping,
    token_rewards,
)

Tensor = torch.Tensor
log = logging.getLogger(__name__)


@dataclass
class RolloutBatch:
    """Prompt + answer ids and masks; per-token tensors are (rows, width) over the answer columns."""

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    response_ids: Tensor
    response_mask: Tensor  # bool, right-padded
    finished: Tensor  # bool per row: the answer ended with EOS

    def to(self, device) -> RolloutBatch:
        return RolloutBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def width(self) -> int:
        return self.response_ids.shape[1]

    def select(self, index: Tensor) -> RolloutBatch:
        """The given rows, all columns kept."""
        return RolloutBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def rows(self, index: Tensor) -> RolloutBatch:
        """The given rows, with the columns that are padding in all of them cut off (less compute)."""
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        lengths = picked["response_mask"].sum(1)
        width = max(int(lengths.max()), 1)
        prompt_cols = self.input_ids.shape[1] - self.width
        prompt_start = int((picked["attention_mask"][:, :prompt_cols] == 0).all(0).sum())
        keep = slice(prompt_start, prompt_cols + width)
        return RolloutBatch(
            input_ids=picked["input_ids"][:, keep],
            attention_mask=picked["attention_mask"][:, keep],
            position_ids=picked["position_ids"][:, keep],
            response_ids=picked["response_ids"][:, :width],
            response_mask=picked["response_mask"][:, :width],
            finished=picked["finished"],
        )


def pack_sequences(
    prompts: list[list[int]], answers: list[list[int]], pad_id: int, eos_id: int
) -> RolloutBatch:
    """Left-padded prompts + right-padded answers (see the module docstring). An empty answer raises:
    a response of no tokens has nowhere to carry its score."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    empty = [i for i, answer in enumerate(answers) if not answer]
    if empty:
        raise ValueError(f"answers {empty[:10]} have no tokens")
    prompt_width = max(len(p) for p in prompts)
    width = max(len(a) for a in answers)
    rows = len(prompts)
    input_ids = torch.full((rows, prompt_width + width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, (prompt, answer) in enumerate(zip(prompts, answers)):
        start = prompt_width - len(prompt)
        input_ids[row, start:prompt_width] = torch.tensor(prompt)
        input_ids[row, prompt_width : prompt_width + len(answer)] = torch.tensor(answer)
        attention_mask[row, start : prompt_width + len(answer)] = 1
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    response_mask = attention_mask[:, prompt_width:].bool()
    finished = torch.tensor([answer[-1] == eos_id for answer in answers])
    return RolloutBatch(
        input_ids, attention_mask, position_ids, input_ids[:, prompt_width:].clone(), response_mask, finished
    )


@dataclass
class PackedRows:
    """The real tokens of a RolloutBatch's rows laid end to end, without padding, in as few rows as hold the
    longest of them (first fit, longest first). About half the columns of a rollout batch of the built-in
    world's prompts are padding otherwise. Attention scores every pair of a row's columns, masked or not: rows
    no longer than the longest sequence keep the pairs across sequences few, where one long row made them most
    of its attention.

    Rows whose prompts are the same tokens (a prompt's samples) share one copy of the prompt: its answers follow
    it one after another, each attending to the prompt and to itself only, with positions continuing from the
    prompt's end, so each answer sees exactly what it would see alone. With 4 samples a prompt, as the tiny
    PPO config draws them, a prompt and its answers take 34% of the tokens they take apart (the world's prompts
    average 67 tokens, the answers 9: 67 + 4 x 9 against 4 x 76). Sharing needs ``attention_mask`` (4-D, True
    where a column may attend); without shared prompts it is None and position ids that restart at each
    sequence keep each one's attention to itself (as in padding-free SFT), which lets transformers pick its
    padding-free kernels."""

    input_ids: Tensor  # (packed rows, columns); the columns after a packed row's last sequence hold token 0
    position_ids: Tensor  # (packed rows, columns)
    attention_mask: Tensor | None  # (packed rows, 1, columns, columns) bool, or None (see above)
    answer_at: Tensor  # (answer tokens,): each one's index in the flattened packed tensor, row by row
    reads: Tensor  # (answer tokens,): the index of the state that predicts it (its predecessor)
    kept_columns: Tensor  # the columns whose logits predict an answer token in some row (logits_to_keep)
    answer_in_kept: Tensor  # (answer tokens,): where its predicting logits land in (rows, kept columns)
    slots: Tensor  # (answer tokens,): where each lands in a flattened (rows, width) tensor
    rows: int
    width: int

    def unpack(self, per_token: Tensor) -> Tensor:
        """(answer tokens, ...) -> (rows, width, ...), zeros at the padding."""
        out = per_token.new_zeros((self.rows * self.width, *per_token.shape[1:]))
        out[self.slots] = per_token
        return out.view(self.rows, self.width, *per_token.shape[1:])


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins whose lengths sum to at most ``capacity``: longest first, each
    into the first bin it fits."""
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if lengths[index] > capacity:
            raise ValueError(f"a sequence of {lengths[index]} tokens does not fit bins of {capacity}")
        fits = next((b for b, free in enumerate(room) if free >= lengths[index]), None)
        if fits is None:
            fits = len(bins)
            bins.append([])
            room.append(capacity)
        bins[fits].append(index)
        room[fits] -= lengths[index]
    return bins


def prompt_groups(batch: RolloutBatch) -> list[list[int]]:
    """The batch's rows grouped by their prompt tokens (padding aside), in order of first appearance."""
    prompt_cols = batch.input_ids.shape[1] - batch.width
    ids, real = batch.input_ids[:, :prompt_cols].cpu(), batch.attention_mask[:, :prompt_cols].bool().cpu()
    groups: dict[tuple[int, ...], list[int]] = {}
    for row in range(ids.shape[0]):
        groups.setdefault(tuple(ids[row][real[row]].tolist()), []).append(row)
    return list(groups.values())


def pack_rows(batch: RolloutBatch) -> PackedRows:
    device, rows, total_cols = batch.input_ids.device, batch.input_ids.shape[0], batch.input_ids.shape[1]
    prompt_cols = total_cols - batch.width
    real = batch.attention_mask.bool().cpu()
    answer_lengths = batch.response_mask.sum(1).tolist()
    groups = prompt_groups(batch)
    prompt_lengths = [int(real[members[0], :prompt_cols].sum()) for members in groups]
    group_lengths = [
        p + sum(answer_lengths[r] for r in members) for p, members in zip(prompt_lengths, groups)
    ]
    columns = max(group_lengths)
    bins = first_fit_decreasing(group_lengths, columns)
    # Per packed column: its group (-1 for filler), its branch (0 the prompt, k the group's k-th answer) and
    # the flat index in the batch it is copied from; per row: its answer tokens' indices and their readers'.
    group_of = torch.full((len(bins), columns), -1, dtype=torch.long)
    branch_of = torch.zeros((len(bins), columns), dtype=torch.long)
    source, dest = [], []
    answer_at: list[Tensor] = [torch.empty(0, dtype=torch.long)] * rows
    reads: list[Tensor] = [torch.empty(0, dtype=torch.long)] * rows
    used = [0] * len(bins)  # real columns of each packed row
    for b, members_of_bin in enumerate(bins):
        column = 0
        for g in members_of_bin:
            first_row = groups[g][0]
            prompt_src = real[first_row, :prompt_cols].nonzero().squeeze(1)
            source.append(first_row * total_cols + prompt_src)
            dest.append(b * columns + column + torch.arange(len(prompt_src)))
            group_of[b, column : column + len(prompt_src)] = g
            column += len(prompt_src)
            last_prompt = b * columns + column - 1
            for k, row in enumerate(groups[g], start=1):
                n = answer_lengths[row]
                source.append(row * total_cols + prompt_cols + torch.arange(n))
                dest.append(b * columns + column + torch.arange(n))
                group_of[b, column : column + n] = g
                branch_of[b, column : column + n] = k
                answer_at[row] = b * columns + column + torch.arange(n)
                reads[row] = torch.cat([torch.tensor([last_prompt]), answer_at[row][:-1]])
                column += n
        used[b] = column
    source, dest = torch.cat(source).to(device), torch.cat(dest).to(device)
    # The columns after a packed row's last sequence restart at position 0 too: a sequence of their own, which
    # no real token attends to (they come after it).
    position_ids = torch.arange(columns, device=device).repeat(len(bins), 1)
    for b, real_columns in enumerate(used):
        position_ids[b, real_columns:] = torch.arange(columns - real_columns, device=device)
    position_ids.view(-1)[dest] = batch.position_ids.flatten()[source]
    input_ids = torch.zeros(len(bins), columns, dtype=batch.input_ids.dtype, device=device)
    input_ids.view(-1)[dest] = batch.input_ids.flatten()[source]
    attention_mask = None
    if any(len(members) > 1 for members in groups):
        causal = torch.ones(columns, columns, dtype=torch.bool).tril()
        same_group = group_of[:, :, None] == group_of[:, None, :]
        own_branch = (branch_of[:, None, :] == 0) | (branch_of[:, :, None] == branch_of[:, None, :])
        attention_mask = (causal & same_group & own_branch).unsqueeze(1).to(device)
    answer_at_all, reads_all = torch.cat(answer_at).to(device), torch.cat(reads).to(device)
    # Only the reading columns go through the lm_head.
    kept_columns = torch.unique(reads_all % columns)
    return PackedRows(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        answer_at=answer_at_all,
        reads=reads_all,
        kept_columns=kept_columns,
        answer_in_kept=(reads_all // columns) * len(kept_columns)
        + torch.searchsorted(kept_columns, reads_all % columns),
        slots=batch.response_mask.flatten().nonzero().squeeze(1),
        rows=rows,
        width=batch.width,
    )


def packing_pays(batch: RolloutBatch) -> bool:
    """True when packing needs fewer rows than the batch has: its rows are no longer than the padded ones, so
    it then costs fewer FLOPs in the matmuls (fewer columns in all) and in attention (a row's attention scores
    every pair of its columns). A prompt's samples always pack (they share it); rows of different prompts and
    similar lengths, each longer than half the longest, never do."""
    lengths = batch.attention_mask.sum(1).tolist()
    groups = prompt_groups(batch)
    if len(groups) < len(lengths):
        return True
    return len(first_fit_decreasing(lengths, max(lengths))) < len(lengths)


def lays_out_packed(layout: str, batch: RolloutBatch) -> bool:
    if layout not in LAYOUTS:
        raise ValueError(f"train.layout: unknown {layout!r} (expected one of {', '.join(LAYOUTS)})")
    if layout == "auto":
        return packing_pays(batch)
    return layout == "packed"


def policy_logprobs(
    model, batch: RolloutBatch, temperature: float, layout: str = "padded", entropy: bool = False
) -> tuple[Tensor, Tensor | None]:
    """(log-probs of the answer tokens, their entropies in nats or None) under ``model``, both (rows, width),
    computed on packed rows or on the padded batch (``layout``: auto | packed | padded). Packed, the
    log-softmax runs over the answer tokens alone, never over a (rows, width, vocabulary) tensor."""
    if lays_out_packed(layout, batch):
        packed = pack_rows(batch)
        logits = model(
            input_ids=packed.input_ids,
            attention_mask=packed.attention_mask,
            position_ids=packed.position_ids,
            logits_to_keep=packed.kept_columns,
            use_cache=False,
        ).logits  # (packed rows, kept columns, vocabulary)
        logits = logits.flatten(0, 1)[packed.answer_in_kept]  # (answer tokens, vocabulary)
        tokens = packed.input_ids.flatten()[packed.answer_at]
        logprobs = packed.unpack(token_logprobs(logits, tokens, temperature))
        entropies = packed.unpack(entropy_from_logits(logits.float() / temperature)) if entropy else None
        return logprobs, entropies
    logits = response_logits(model, batch.input_ids, batch.attention_mask, batch.position_ids, batch.width)
    entropies = entropy_from_logits(logits.float() / temperature) if entropy else None
    return token_logprobs(logits, batch.response_ids, temperature), entropies


def value_estimates(value_model, batch: RolloutBatch, layout: str = "padded") -> Tensor:
    """V(s_t) for each answer token t, read from the state before it: (rows, width)."""
    if lays_out_packed(layout, batch):
        packed = pack_rows(batch)
        return packed.unpack(
            value_model(packed.input_ids, packed.attention_mask, packed.position_ids, packed.reads)
        )
    return value_model(batch.input_ids, batch.attention_mask, batch.position_ids, batch.width)


def sequence_scores(
    helpful: Tensor,
    safety: Tensor | None,
    is_safety: Tensor,
    batch: RolloutBatch,
    train_cfg,
) -> tuple[Tensor, Tensor]:
    """LOGIT(R_c) with the optional penalties: (score, used_safety). Without a safety RM, R_c = R_h."""
    if safety is None:
        combined, used_safety = helpful, torch.zeros_like(is_safety)
    else:
        combined, used_safety = combine_rewards(helpful, safety, is_safety, train_cfg.safety_threshold)
    score = shaping(
        logit_of_sigmoid(combined),
        batch.finished,
        batch.response_mask.sum(1),
        no_eos_penalty=train_cfg.no_eos_penalty,
        length_penalty=train_cfg.length_penalty,
        no_eos_mode=train_cfg.no_eos_mode,
    )
    return score, used_safety


def baselined(score: Tensor, train_cfg) -> Tensor:
    """The scores PPO whitens: as they are, or (train.baseline=prompt_mean) minus their prompt's mean."""
    if train_cfg.baseline == "prompt_mean":
        return minus_prompt_mean(score, train_cfg.samples_per_prompt)
    return score


def calibrate_value_head(value_model, scores: Tensor) -> None:
    """A value head taken from the reward model speaks raw scores; PPO's returns are whitened. Map it onto
    the whitened scale with the first rollout's statistics, the ones that whiten that rollout."""
    if scores.numel() < 2 or not is_finite_batch(scores):
        log.warning("value head left uncalibrated: the first rollout's scores are too few or not finite")
        return
    moments = RunningMoments().update(scores)
    if moments.std > 0:
        value_model.calibrate(moments.mean, moments.std)
        log.info(
            "value head calibrated from the reward model's scale: shift %.3f, scale %.3f",
            moments.mean,
            moments.std,
        )


def whiten_scores(
    score: Tensor, moments: RunningMoments, mode: str, every_score: Tensor | None = None
) -> tuple[Tensor, RunningMoments]:
    """WHITEN: with the running statistics including this batch (mode running), or this batch alone.

    ``every_score``: the scores of all processes (so that every rank keeps the same statistics).
    """
    if mode == "batch":
        return masked_whiten(score, torch.ones_like(score, dtype=torch.bool)), moments
    moments = moments.update(score if every_score is None else every_score)
    return moments.whiten(score), moments


@dataclass
class Rollout:
    batch: RolloutBatch
    logprobs: Tensor
    ref_logprobs: Tensor
    values: Tensor
    kl: Tensor  # per token, the estimator of train.kl_estimator
    score: Tensor  # LOGIT(R_c) after shaping, before whitening
    whitened: Tensor
    rewards: Tensor
    advantages: Tensor
    returns: Tensor
    entropy: Tensor  # per token, nats

    @property
    def sequence_kl(self) -> Tensor:
        """KL(policy || reference) per answer, summed over its tokens (k1: log-ratio of the sampled tokens)."""
        return self.kl.sum(1)


@dataclass
class RolloutForwards:
    logprobs: Tensor
    ref_logprobs: Tensor
    values: Tensor
    entropy: Tensor


def recorded_logprobs(completions, batch: RolloutBatch) -> tuple[Tensor, Tensor] | None:
    """The log-probs and entropies that generation recorded while it drew the answers (SamplingParams.logprobs),
    as (rows, width) tensors like the forwards'; None when the backend recorded none (vLLM), and the policy
    forward computes them. On the same weights they agree with that forward: on the built-in world's trained
    policy, 162 answer tokens, mean |difference| 0.0003 in bf16 autocast (largest 0.03), 0 in float32."""
    if any(c.token_logprobs is None for c in completions):
        return None
    logprobs = torch.zeros(batch.response_ids.shape)
    entropy = torch.zeros(batch.response_ids.shape)
    for row, completion in enumerate(completions):
        length = len(completion.token_ids)
        logprobs[row, :length] = torch.tensor(completion.token_logprobs)
        entropy[row, :length] = torch.tensor(completion.token_entropies)
    device = batch.input_ids.device
    return logprobs.to(device), entropy.to(device)


@torch.inference_mode()
def rollout_forwards(
    policy,
    reference,
    value_model,
    batch: RolloutBatch,
    temperature: float,
    layout: str = "padded",
    rows_per_forward: int | None = None,
    recorded: tuple[Tensor, Tensor] | None = None,
) -> RolloutForwards:
    """Old log-probs, reference log-probs, values and per-token entropy of the sampled answers, computed
    ``rows_per_forward`` rows at a time (default: all at once). ``recorded``: the old log-probs and entropies
    generation recorded (``recorded_logprobs``); the policy forward is then left out."""
    rows = batch.input_ids.shape[0]
    step = rows_per_forward or rows
    parts = []
    for start in range(0, rows, step):
        index = torch.arange(start, min(start + step, rows))
        part = batch.select(index)
        if recorded is None:
            logprobs, entropy = policy_logprobs(policy, part, temperature, layout, entropy=True)
        else:
            logprobs, entropy = (t[index.to(t.device)] for t in recorded)
        with reference_model(policy, reference) as ref:
            ref_logprobs, _ = policy_logprobs(ref, part, temperature, layout)
        values = value_estimates(value_model, part, layout)
        parts.append(RolloutForwards(logprobs, ref_logprobs, values, entropy))
    return RolloutForwards(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(RolloutForwards)))


def finish_rollout(
    batch: RolloutBatch,
    forwards: RolloutForwards,
    score: Tensor,
    moments: RunningMoments,
    train_cfg,
    every_score: Tensor | None = None,
) -> tuple[Rollout | None, RunningMoments]:
    """Rewards and advantages; None (and the statistics untouched) when anything is NaN or inf."""
    mask = batch.response_mask
    pieces = (score, forwards.logprobs, forwards.ref_logprobs, forwards.values)
    if not is_finite_batch(*(torch.where(mask, p, 0) if p.dim() == 2 else p for p in pieces)):
        return None, moments
    if every_score is not None and not is_finite_batch(every_score):
        return None, moments
    every_score = None if every_score is None else baselined(every_score, train_cfg)
    whitened, moments = whiten_scores(baselined(score, train_cfg), moments, train_cfg.whiten, every_score)
    kl = kl_penalty(forwards.logprobs, forwards.ref_logprobs, mask, train_cfg.kl_estimator)
    rewards = token_rewards(whitened, kl, train_cfg.kl_beta, mask)
    advantages, returns = gae(rewards, forwards.values, mask, train_cfg.gamma, train_cfg.lam)
    advantages = masked_whiten(advantages, mask) if int(mask.sum()) > 1 else advantages
    rollout = Rollout(
        batch=batch,
        logprobs=forwards.logprobs,
        ref_logprobs=forwards.ref_logprobs,
        values=forwards.values,
        kl=kl,
        score=score,
        whitened=whitened,
        rewards=rewards,
        advantages=advantages,
        returns=returns,
        entropy=forwards.entropy,
    )
    return rollout, moments


def collect_rollout(
    policy,
    reference,
    value_model,
    batch: RolloutBatch,
    completions,
    score: Tensor,
    moments: RunningMoments,
    train_cfg,
    every_score: Tensor | None = None,
    calibrate: bool = False,
) -> tuple[Rollout | None, RunningMoments]:
    """The rollout of sampled and scored answers, as ppo/train.py, bench/ppo.py and the learning test take it:
    the value head first calibrated to the scores when ``calibrate`` (the first iteration of a value model
    from the RM), then the forwards (old log-probs from the decoding where it recorded them) and the rewards
    and advantages. None when anything is NaN or inf (see ``finish_rollout``)."""
    if calibrate:
        calibrate_value_head(value_model, baselined(score if every_score is None else every_score, train_cfg))
    forwards = rollout_forwards(
        policy,
        reference,
        value_model,
        batch,
        train_cfg.temperature,
        train_cfg.layout,
        train_cfg.micro_batch_size,
        recorded_logprobs(completions, batch),
    )
    return finish_rollout(batch, forwards, score, moments, train_cfg, every_score)


def out_of_inference_mode(rollout: Rollout) -> Rollout:
    """Clones that autograd may save (the update multiplies the advantages into the loss)."""
    batch = RolloutBatch(**{f.name: getattr(rollout.batch, f.name).clone() for f in fields(rollout.batch)})
    cloned = {f.name: getattr(rollout, f.name).clone() for f in fields(rollout) if f.name != "batch"}
    return Rollout(batch=batch, **cloned)


def rollout_stats(
    rollout: Rollout, raw_helpful: Tensor, raw_safety: Tensor | None, used_safety: Tensor
) -> dict:
    """The per-iteration numbers of the rollout (floats, for metrics.json and wandb)."""
    mask = rollout.batch.response_mask
    lengths = mask.sum(1).float()
    stats = {
        "reward/score": rollout.score.mean().item(),
        "reward/whitened": rollout.whitened.mean().item(),
        "reward/helpfulness_raw": raw_helpful.mean().item(),
        "reward/total": rollout.rewards.sum(1).mean().item(),
        "kl/sequence": rollout.sequence_kl.mean().item(),
        "kl/sequence_max": rollout.sequence_kl.max().item(),
        "kl/token": masked_mean(rollout.kl, mask).item(),
        "policy/entropy": masked_mean(rollout.entropy, mask).item(),
        "response/answers": float(lengths.numel()),  # prompts x train.samples_per_prompt on this process
        "response/length": lengths.mean().item(),
        "response/eos_rate": rollout.batch.finished.float().mean().item(),
        "value/mean": masked_mean(rollout.values, mask).item(),
    }
    if raw_safety is not None:
        stats["reward/safety_raw"] = raw_safety.mean().item()
        stats["reward/used_safety_rate"] = used_safety.float().mean().item()
    return stats
