"""Rejection sampling's arithmetic as pure functions: pick the best of K, pool iterations, the best-of-N curve.

Llama 2 (sec. 3.2.3) samples K answers per prompt, keeps the one the reward model scores highest, and from
RLHF-V4 on pools the best samples of all iterations. Figure 7 plots, against N, the maximum and the median
reward among the first N samples: the gap between them is what rejection sampling can gain.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable, Sequence


def prompt_key(prompt: list[dict]) -> str:
    """A stable id for a prompt dialog (same messages -> same key, in any run or iteration)."""
    text = json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def best_index(scores: Sequence[float], eligible: Sequence[bool] | None = None) -> int | None:
    """Index of the highest score among the eligible samples (the first on a tie); None when none is eligible."""
    if eligible is not None and len(eligible) != len(scores):
        raise ValueError(f"{len(scores)} scores but {len(eligible)} eligibility flags")
    best = None
    for index, score in enumerate(scores):
        if eligible is not None and not eligible[index]:
            continue
        if best is None or score > scores[best]:
            best = index
    return best


def first_n_curve(scores: Sequence[Sequence[float]]) -> dict[str, list]:
    """For N = 1..K, the mean over prompts of the max and of the median of each prompt's first N scores.

    Computed from one set of K samples per prompt, as in the paper's figure 7; every prompt needs K scores.
    """
    if not scores:
        raise ValueError("first_n_curve needs the scores of at least one prompt")
    k = len(scores[0])
    for index, row in enumerate(scores):
        if len(row) != k or k == 0:
            raise ValueError(f"prompt {index} has {len(row)} scores, expected {k} (and at least one)")
    curve: dict[str, list] = {"n": [], "max": [], "median": []}
    for n in range(1, k + 1):
        curve["n"].append(n)
        curve["max"].append(statistics.fmean(max(row[:n]) for row in scores))
        curve["median"].append(statistics.fmean(statistics.median(row[:n]) for row in scores))
    return curve


def pool_best(iterations: Iterable[Iterable[dict]]) -> list[dict]:
    """The best-scored record per prompt key over all iterations (oldest first; a tie keeps the newer one).

    Records need "key" and "score"; the scores must come from the same reward, as they do within a run.
    The result keeps the order in which keys first appear.
    """
    best: dict[str, dict] = {}
    for records in iterations:
        for record in records:
            held = best.get(record["key"])
            if held is None or record["score"] >= held["score"]:
                best[record["key"]] = record
    return list(best.values())


def prompt_window(total: int, size: int | None, iteration: int) -> list[int]:
    """Indices of the prompts iteration k samples: the k-th window of `size` in a fixed order, wrapping around.

    Successive iterations then see new prompts (as Llama 2's iterations did) until the set is used up.
    """
    if iteration < 1:
        raise ValueError(f"iteration must be >= 1, got {iteration}")
    if total < 1:
        raise ValueError("no prompts to sample from")
    if size is None or size >= total:
        return list(range(total))
    if size < 1:
        raise ValueError(f"sampling.max_prompts must be >= 1 or null, got {size}")
    start = (iteration - 1) * size
    return [(start + offset) % total for offset in range(size)]


def selection_quality(rm_scores: Sequence[Sequence[float]], oracle_scores: Sequence[Sequence[float]]) -> dict:
    """How good the reward model is at picking: mean oracle score of the RM's pick, of the oracle's own pick
    (the ceiling), of the first sample (no selection) and of all samples, over prompts."""
    if len(rm_scores) != len(oracle_scores) or not rm_scores:
        raise ValueError(f"{len(rm_scores)} rows of RM scores but {len(oracle_scores)} of oracle scores")
    rm_pick, oracle_pick, first, every, agree = [], [], [], [], []
    for index, (rm_row, oracle_row) in enumerate(zip(rm_scores, oracle_scores)):
        if len(rm_row) != len(oracle_row) or not rm_row:
            raise ValueError(f"prompt {index}: {len(rm_row)} RM scores but {len(oracle_row)} oracle scores")
        chosen = oracle_row[best_index(rm_row)]
        rm_pick.append(chosen)
        oracle_pick.append(max(oracle_row))
        first.append(oracle_row[0])
        every.extend(oracle_row)
        agree.append(chosen == max(oracle_row))
    return {
        "oracle_of_rm_pick": statistics.fmean(rm_pick),
        "oracle_of_oracle_pick": statistics.fmean(oracle_pick),
        "oracle_of_first_sample": statistics.fmean(first),
        "oracle_of_all_samples": statistics.fmean(every),
        "rm_pick_is_an_oracle_best": statistics.fmean(agree),
    }
