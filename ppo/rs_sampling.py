"""Sampling K answers per prompt and scoring them, written to disk batch by batch so a restart resumes.

Prompts are ordered by length and cut into fixed chunks once (so a batch carries little padding and the
chunking does not depend on what was already done); a chunk's sampling seed derives from its index, and a
chunk whose prompts are all on disk is skipped. One record per prompt:
`{"key", "prompt", "is_safety", "meta", "answers", "finished", "reward", "helpful"[, "safety", "used_safety"]}`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from chat.dialog import PromptRecord
from generation import SamplingParams
from ppo.rs_samples import append_samples, recover_samples
from ppo.selection import prompt_key

log = logging.getLogger(__name__)


def length_ordered_chunks(lengths: list[int], chunk_size: int) -> list[list[int]]:
    """Prompt indices, longest first, cut into chunks of `chunk_size` (similar lengths batch together)."""
    if chunk_size < 1:
        raise ValueError(f"sampling.prompts_per_write must be >= 1, got {chunk_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + chunk_size] for start in range(0, len(order), chunk_size)]


def chunk_seed(base_seed: int, iteration: int, chunk: int) -> int:
    """A distinct, reproducible seed per chunk (one seed for all would replay the same random stream)."""
    return (base_seed * 1_000_003 + iteration * 10_007 + chunk) % (2**31)


def sample_records(
    prompts: list[PromptRecord], answers: list[list], scores: dict[str, list], k: int
) -> list[dict]:
    """Records of one chunk from its completions and the flat (prompt-major) score lists."""
    records = []
    for row, (record, completions) in enumerate(zip(prompts, answers, strict=True)):
        span = slice(row * k, (row + 1) * k)
        records.append(
            {
                "key": prompt_key(record.prompt),
                "prompt": record.prompt,
                "is_safety": record.is_safety,
                "meta": record.meta,
                "answers": [c.text for c in completions],
                "finished": [c.finished for c in completions],
                **{name: values[span] for name, values in scores.items()},
            }
        )
    return records


def sample_and_score(
    generator,
    encoder,
    reward_rule,
    prompts: list[PromptRecord],
    params: SamplingParams,
    path: Path,
    prompts_per_write: int,
    iteration: int,
    show_progress: bool = True,
) -> tuple[list[dict], dict]:
    """Sample `params.num_samples` answers per prompt, score them, append each chunk to `path`.

    Returns (records in the order of `prompts`, throughput numbers of this call). Prompts already in the
    file (from an interrupted run) are not sampled again.
    """
    done = {record["key"]: record for record in recover_samples(path)}
    keys = [prompt_key(record.prompt) for record in prompts]
    if done:
        log.info(
            "resuming: %d of %d prompts already sampled in %s", sum(k in done for k in keys), len(keys), path
        )
    lengths = [len(encoder.encode_for_generation(record.prompt)) for record in prompts]
    chunks = length_ordered_chunks(lengths, prompts_per_write)
    k = params.num_samples
    sampled = 0
    started = time.perf_counter()
    with tqdm(
        total=len(prompts),
        initial=sum(key in done for key in keys),
        unit="prompt",
        desc=f"rejection sampling iter-{iteration}",
        disable=not show_progress,
    ) as progress:
        for chunk_index, chunk in enumerate(chunks):
            todo = [i for i in chunk if keys[i] not in done]
            if not todo:
                continue
            chunk_prompts = [prompts[i] for i in todo]
            seeded = replace(params, seed=chunk_seed(params.seed, iteration, chunk_index))
            completions = generator.generate([p.prompt for p in chunk_prompts], seeded)
            flat_prompts = [p.prompt for p in chunk_prompts for _ in range(k)]
            flat_safety = [p.is_safety for p in chunk_prompts for _ in range(k)]
            flat_answers = [c.text for samples in completions for c in samples]
            scores = reward_rule.score(flat_prompts, flat_safety, flat_answers)
            records = sample_records(chunk_prompts, completions, scores, k)
            append_samples(path, records)
            done.update((record["key"], record) for record in records)
            sampled += len(flat_answers)
            progress.update(len(todo))
            progress.set_postfix(samples_per_s=f"{sampled / (time.perf_counter() - started):.1f}")
    seconds = time.perf_counter() - started
    throughput = {"samples": sampled, "seconds": seconds, "samples_per_s": sampled / max(seconds, 1e-9)}
    return [done[key] for key in keys], throughput
