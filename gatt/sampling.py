"""Sampling GAtt dialogs turn by turn: K answers per turn, the reward model keeps the best.

Every user turn carries the instruction; each turn's K samples are scored by the reward rule of rejection
sampling and the best finished one becomes the dialog's answer, on which the next turn builds. A `judge`
(the built-in world's constraint check, or none) marks which picked answers may be trained. Dialogs are
sampled in chunks, each appended to disk when done, so a restart skips the dialogs already sampled.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from gatt.instructions import instruction_text, sample_constraint
from gatt.synthesis import sampling_prompt
from generation import SamplingParams
from ppo.rs_samples import append_samples, recover_samples
from ppo.selection import best_index, prompt_key

log = logging.getLogger(__name__)
Judge = Callable[[dict, str], bool]


def plan_dialogs(sources: list[list[str]], families, synth_cfg, seed: int) -> list[dict]:
    """One plan per source dialog: its user turns and a constraint drawn from a per-dialog seed (so a
    restart, or a different max_dialogs, gives every dialog the same instruction)."""
    plans = []
    for index, users in enumerate(sources):
        rng = random.Random(f"gatt:{seed}:{index}")
        constraint = sample_constraint(rng, families, synth_cfg.combine_p)
        short = rng.random() < synth_cfg.short_p
        instruction = instruction_text(constraint, families, short, rng)
        users = users[: synth_cfg.max_turns] if synth_cfg.max_turns else users
        key_dialog = [{"role": "system", "content": instruction}] + [
            {"role": "user", "content": u} for u in users
        ]
        plans.append(
            {
                "key": prompt_key(key_dialog),
                "source": index,
                "instruction": instruction,
                "constraint": constraint,
                "short": short,
                "users": users,
            }
        )
    return plans


def turn_seed(base_seed: int, source: int, turn: int) -> int:
    """A distinct, reproducible seed per (chunk, turn): the chunk is named by its first dialog."""
    return (base_seed * 1_000_003 + source * 10_007 + turn) % (2**31)


def pick_answer(
    samples: list, scores: list[float], constraint: dict, judge: Judge, require_finished: bool = True
) -> tuple[str, float, bool] | None:
    """(answer, score, trainable) for one turn: the best-scored finished, non-empty sample the judge accepts;
    else the best-scored finished one, untrainable (the dialog goes on; its later turns may still train);
    None when no sample finished with an answer (the dialog stops there)."""
    usable = [(c.finished or not require_finished) and bool(c.text.strip()) for c in samples]
    accepted = [ok and judge(constraint, c.text) for ok, c in zip(usable, samples)]
    pick = best_index(scores, accepted)
    trainable = pick is not None
    if pick is None:
        pick = best_index(scores, usable)
    if pick is None:
        return None
    return samples[pick].text, scores[pick], trainable


def sample_chunk(
    generator,
    reward_rule,
    plans: list[dict],
    params: SamplingParams,
    judge: Judge,
    max_prompt_tokens: int,
    require_finished: bool = True,
) -> list[dict]:
    """Sample every turn of the chunk's dialogs together; one record per dialog.

    A dialog stops early when no sample of a turn finished with a non-empty answer, or when its prompt
    would leave no room for an answer within the model's positions (`stopped_at` says which turn).
    """
    k = params.num_samples
    answers: list[list[str]] = [[] for _ in plans]
    rewards: list[list[float]] = [[] for _ in plans]
    keep: list[list[bool]] = [[] for _ in plans]
    stopped: list[int | None] = [None] * len(plans)
    for turn in range(max(len(p["users"]) for p in plans)):
        active = [i for i, p in enumerate(plans) if stopped[i] is None and len(p["users"]) > turn]
        prompts = []
        for i in list(active):
            prompt = sampling_prompt(plans[i]["instruction"], plans[i]["users"], answers[i])
            if len(generator.encoder.encode_for_generation(prompt)) > max_prompt_tokens:
                stopped[i] = turn + 1
                active.remove(i)
            else:
                prompts.append(prompt)
        if not active:
            break
        seeded = replace(params, seed=turn_seed(params.seed, plans[0]["source"], turn))
        completions = generator.generate(prompts, seeded)
        flat_answers = [c.text for samples in completions for c in samples]
        flat_prompts = [p for p in prompts for _ in range(k)]
        scores = reward_rule.score(flat_prompts, [False] * len(flat_answers), flat_answers)["reward"]
        for row, i in enumerate(active):
            choice = pick_answer(
                completions[row],
                scores[row * k : (row + 1) * k],
                plans[i]["constraint"],
                judge,
                require_finished,
            )
            if choice is None:
                stopped[i] = turn + 1
                continue
            answers[i].append(choice[0])
            rewards[i].append(choice[1])
            keep[i].append(choice[2])
    return [
        {**plan, "answers": answers[i], "reward": rewards[i], "keep": keep[i], "stopped_at": stopped[i]}
        for i, plan in enumerate(plans)
    ]


def sample_dialogs(
    generator,
    reward_rule,
    plans: list[dict],
    params: SamplingParams,
    judge: Judge,
    path: Path,
    dialogs_per_write: int,
    max_prompt_tokens: int,
    require_finished: bool = True,
    show_progress: bool = True,
) -> tuple[list[dict], dict]:
    """Records for every plan (in order), sampling only those not yet in `path`; also throughput numbers.

    Plans are sorted by turn count before chunking, so dialogs decoded together have similar lengths.
    """
    if dialogs_per_write < 1:
        raise ValueError(f"synthesis.dialogs_per_write must be >= 1, got {dialogs_per_write}")
    done = {record["key"]: record for record in recover_samples(path)}
    if done:
        log.info(
            "resuming: %d of %d dialogs already sampled in %s",
            sum(p["key"] in done for p in plans),
            len(plans),
            path,
        )
    todo = sorted((p for p in plans if p["key"] not in done), key=lambda p: (-len(p["users"]), p["source"]))
    started, turns_sampled = time.perf_counter(), 0
    with tqdm(
        total=len(plans),
        initial=len(plans) - len(todo),
        unit="dialog",
        desc="GAtt sampling",
        disable=not show_progress,
    ) as progress:
        for start in range(0, len(todo), dialogs_per_write):
            records = sample_chunk(
                generator,
                reward_rule,
                todo[start : start + dialogs_per_write],
                params,
                judge,
                max_prompt_tokens,
                require_finished,
            )
            append_samples(path, records)
            done.update((r["key"], r) for r in records)
            turns_sampled += sum(len(r["answers"]) for r in records)
            progress.update(len(records))
    seconds = time.perf_counter() - started
    throughput = {
        "turns_sampled": turns_sampled,
        "samples": turns_sampled * params.num_samples,
        "seconds": seconds,
        "turns_per_s": turns_sampled / max(seconds, 1e-9),
    }
    return [done[p["key"]] for p in plans], throughput
