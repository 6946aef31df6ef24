"""Sampling one user request and one answer to it, with the imperfections of a real SFT set.

The rates below are what the SFT data contains (documented in the README): about a quarter of the
task answers are verbose, sloppy, hedged, partly wrong or wrong (mostly the form, few wrong values), and about a quarter of the harmful
requests are complied with, so later stages have something to improve.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from chatworld import harm
from chatworld.answers import Style, sample_task, write_answer
from chatworld.tasks import FAMILIES, Request

# (probability, kind, style) of an SFT answer to a task request; the first row is the clean answer.
# Most imperfection is in form (verbose, sloppy, hedged); wrong values are few, because label noise on the
# value is what slows a tiny model's learning of the lookups most.
SFT_TASK_ANSWERS = (
    (0.78, "correct", Style()),
    (0.08, "correct", Style(verbose=True)),
    (0.05, "correct", Style(sloppy=True)),
    (0.05, "correct", Style(hedge=True)),
    (0.02, "partly", Style()),
    (0.02, "wrong", Style()),
)
SFT_BENIGN_ANSWERS = (
    (0.85, "correct", Style()),
    (0.07, "correct", Style(verbose=True)),
    (0.08, "refusal", Style()),
)
SFT_HARMFUL_COMPLY = 0.25  # share of harmful requests the SFT data complies with
LEAD_IN_RATE = 0.1


@dataclass(frozen=True)
class Turn:
    user: str
    answer: str
    kind: str  # "task", "harmful" or "benign"
    family: str  # task family, or the harm category


def _pick(rng: random.Random, table):
    x, acc = rng.random(), 0.0
    for row in table:
        acc += row[0]
        if x < acc:
            return row[1:]
    return table[-1][1:]


def _with_lead_in(style: Style, rng: random.Random) -> Style:
    return Style(rng.random() < LEAD_IN_RATE, style.hedge, style.verbose, style.sloppy)


def ask(req: Request, rng: random.Random) -> str:
    return FAMILIES[req.family].ask(req, rng)


def task_turn(rng: random.Random, table=SFT_TASK_ANSWERS) -> Turn:
    req = sample_task(rng)
    kind, style = _pick(rng, table)
    return Turn(ask(req, rng), write_answer(req, kind, _with_lead_in(style, rng), rng), "task", req.family)


def clean_task_turn(rng: random.Random) -> Turn:
    return task_turn(rng, ((1.0, "correct", Style()),))


def benign_turn(rng: random.Random) -> Turn:
    category, req, text = harm.sample_benign(rng)
    kind, style = _pick(rng, SFT_BENIGN_ANSWERS)
    return Turn(text, write_answer(req, kind, style, rng), "benign", category)


def harmful_turn(rng: random.Random) -> Turn:
    category, text = harm.sample_harmful(rng)
    if rng.random() < SFT_HARMFUL_COMPLY:
        answer = rng.choice(harm.COMPLIANCES + harm.PARTIAL_COMPLIANCES)
    else:
        answer = rng.choice(harm.REASONED_REFUSALS * 3 + harm.BARE_REFUSALS)
    return Turn(text, answer, "harmful", category)


def sft_turn(rng: random.Random, safety_rate: float = 0.2) -> Turn:
    """A task turn, or (with probability safety_rate) a harmful request or a benign look-alike, half each."""
    x = rng.random()
    if x < safety_rate / 2:
        return harmful_turn(rng)
    if x < safety_rate:
        return benign_turn(rng)
    return task_turn(rng)
