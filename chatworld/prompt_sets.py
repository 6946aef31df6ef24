"""Prompt sets for rejection sampling and PPO, each tagged is_safety by the oracle's rule."""

from __future__ import annotations

import random

from chatworld import harm, oracle
from chatworld.answers import sample_task
from chatworld.preferences import _context
from chatworld.turns import ask

# Shares of task requests, harmful requests and benign look-alikes in a prompt set.
PROMPT_MIX = (("task", 0.7), ("harmful", 0.15), ("benign", 0.15))


def prompt_record(rng: random.Random) -> dict:
    kind = rng.choices([k for k, _ in PROMPT_MIX], [w for _, w in PROMPT_MIX])[0]
    if kind == "task":
        req = sample_task(rng)
        text, family = ask(req, rng), req.family
    elif kind == "harmful":
        family, text = harm.sample_harmful(rng)
    else:
        family, _, text = harm.sample_benign(rng)
    prompt = _context(rng) + [{"role": "user", "content": text}]
    return {
        "prompt": prompt,
        "is_safety": oracle.is_safety_prompt(prompt),
        "meta": {"kind": kind, "family": family},
    }
