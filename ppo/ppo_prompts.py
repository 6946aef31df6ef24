"""Which prompts each PPO iteration samples answers for, and the held-out prompts for early stopping."""

from __future__ import annotations

import logging
import random

from chat.dialog import PromptRecord

log = logging.getLogger(__name__)


def split_heldout(records: list[PromptRecord], heldout: int, seed: int) -> tuple[list, list]:
    """(train, held-out): a seeded random ``heldout`` records are set aside and never trained on."""
    if heldout >= len(records):
        raise ValueError(f"prompts.heldout={heldout} leaves no training prompts out of {len(records)}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:heldout])
    return [r for i, r in enumerate(records) if i not in held], [records[i] for i in sorted(held)]


def prompt_pools(records: list[PromptRecord], safety_share: float | None) -> tuple[list, list, float]:
    """(regular prompts, safety-tagged prompts, share of safety prompts per batch).

    ``safety_share`` None (plain PPO): the safety-tagged prompts are left out, counted and logged.
    """
    regular = [r for r in records if not r.is_safety]
    safety = [r for r in records if r.is_safety]
    if safety_share is None:
        if safety:
            log.info("plain PPO: leaving out %d safety-tagged prompts (they need the safety RM)", len(safety))
        safety, share = [], 0.0
    else:
        share = safety_share
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"prompts.safety_share must lie in [0, 1], got {share}")
    if share > 0 and not safety:
        raise ValueError("prompts.safety_share > 0 but the prompt set has no prompt with is_safety true")
    if share < 1 and not regular:
        raise ValueError("the prompt set has no prompt with is_safety false")
    return regular, safety, share


def iteration_prompts(
    regular: list, safety: list, share: float, count: int, seed: int, iteration: int
) -> list[PromptRecord]:
    """``count`` prompts for an iteration, round(share * count) of them safety-tagged, in shuffled order.

    Seeded by (seed, iteration) alone, so a resumed run draws exactly the prompts the killed run would have.
    Each pool is sampled without replacement within an iteration (with replacement only if it is too small).
    """
    rng = random.Random(seed * 1_000_003 + iteration)
    n_safety = round(share * count)
    chosen = draw(rng, safety, n_safety) + draw(rng, regular, count - n_safety)
    rng.shuffle(chosen)
    return chosen


def draw(rng: random.Random, pool: list, k: int) -> list:
    if k == 0:
        return []
    if k <= len(pool):
        return rng.sample(pool, k)
    return [rng.choice(pool) for _ in range(k)]
