"""Preference pairs for helpfulness and safety, rated from the oracle's score gap.

Each pair first draws a target rating, then draws answer pairs until the annotator's gap falls in
that rating's band, so every level is well populated and a rating always means the same size of gap.
The annotator is the oracle plus a small uniform noise per answer (ANNOTATOR_NOISE): like a human
rater, it cannot tell near-ties apart, so "negligibly better" pairs are partly coin flips (the paper's
"negligibly better / unsure") while the larger levels are decided by the oracle alone.
"""

from __future__ import annotations

import random

from chatworld import harm, oracle
from chatworld.answers import Style, sample_task, write_answer
from chatworld.tables import NEUTRAL_SYSTEMS
from chatworld.tasks import Request
from chatworld.turns import ask, clean_task_turn

# Lower bound of the oracle score gap (chosen - rejected) for each rating; gaps of 0 make no pair.
RATING_THRESHOLDS = (
    ("significantly_better", 0.6),
    ("better", 0.3),
    ("slightly_better", 0.15),
    ("negligibly_better", 0.0),
)
TARGET_RATINGS = (
    ("significantly_better", 0.35),
    ("better", 0.25),
    ("slightly_better", 0.2),
    ("negligibly_better", 0.2),
)
CANDIDATE_KINDS = (
    ("correct", 0.5),
    ("partly", 0.15),
    ("wrong", 0.2),
    ("irrelevant", 0.08),
    ("refusal", 0.07),
)
MAX_TRIES = 200
ANNOTATOR_NOISE = 0.05  # half-width; below the smallest oracle penalty (0.1), far below "better" (0.3)


def rating_for_gap(gap: float) -> str | None:
    """The rating a score gap earns (None for gap <= 0: no preference)."""
    if gap <= 0:
        return None
    for rating, low in RATING_THRESHOLDS:
        if gap >= low:
            return rating
    raise AssertionError("unreachable: the last threshold is 0")


def _weighted(rng: random.Random, table) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def _random_style(rng: random.Random) -> Style:
    return Style(rng.random() < 0.3, rng.random() < 0.2, rng.random() < 0.25, rng.random() < 0.2)


def _context(rng: random.Random) -> list[dict]:
    """Optional system message and earlier clean turns before the judged request."""
    out = [{"role": "system", "content": rng.choice(NEUTRAL_SYSTEMS)}] if rng.random() < 0.3 else []
    for _ in range(rng.choice((0, 0, 0, 1, 2, 3))):
        t = clean_task_turn(rng)
        out += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.answer}]
    return out


def _record(prompt, chosen, rejected, rating, scores, gap, meta) -> dict:
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "rating": rating,
        "meta": {**meta, "chosen_score": scores[0], "rejected_score": scores[1], "annotator_gap": gap},
    }


def _pair(rng, prompt, draw_answer, score, meta) -> dict:
    """Draw answer pairs until their gap earns the target rating (or any positive gap after MAX_TRIES)."""
    target = _weighted(rng, TARGET_RATINGS)
    best = None
    for _ in range(MAX_TRIES):
        a, b = draw_answer(), draw_answer()
        if a == b:
            continue
        sa, sb = score(prompt, a), score(prompt, b)
        gap = round(sa - sb + rng.uniform(-ANNOTATOR_NOISE, ANNOTATOR_NOISE), 4)
        if gap < 0:
            a, b, sa, sb, gap = b, a, sb, sa, -gap
        rating = rating_for_gap(gap)
        if rating == target:
            return _record(prompt, a, b, rating, (sa, sb), gap, meta)
        if rating is not None and best is None:
            best = (a, b, rating, (sa, sb), gap)
    if best is None:
        raise RuntimeError(f"no two distinct answers with a positive gap for {prompt[-1]['content']!r}")
    return _record(prompt, *best, meta)


def helpfulness_pair(rng: random.Random) -> dict:
    req = sample_task(rng)
    prompt = _context(rng) + [{"role": "user", "content": ask(req, rng)}]

    def draw() -> str:
        return write_answer(req, _weighted(rng, CANDIDATE_KINDS), _random_style(rng), rng)

    return _pair(rng, prompt, draw, oracle.helpfulness, {"objective": "helpfulness", "family": req.family})


def _contrast_record(prompt, chosen, rejected, score, meta) -> dict:
    """A contrast pair rated by the oracle's own gap (no annotator noise: the pair is built to differ)."""
    scores = (score(prompt, chosen), score(prompt, rejected))
    gap = round(scores[0] - scores[1], 4)
    rating = rating_for_gap(gap)
    if rating is None:
        text = prompt[-1]["content"]
        raise AssertionError(f"the oracle does not prefer {chosen!r} over {rejected!r} for {text!r}")
    return _record(prompt, chosen, rejected, rating, scores, gap, {**meta, "contrast": True})


def contrast_pair(rng: random.Random, plain: bool = False) -> dict:
    """One request, two answers written alike (one style, the same draws for lead-in, hedge and extra
    sentences) that differ only in the value they claim: the right one over a wrong one, rated by the
    oracle's gap. The world's pairs mostly differ in style too, and a reward model trained on them alone
    learns style and never the value; these pairs isolate it. `plain`: no context and no style, the
    shortest form of the lesson (the helpfulness RM's curriculum starts with them)."""
    req = sample_task(rng)
    prompt = ([] if plain else _context(rng)) + [{"role": "user", "content": ask(req, rng)}]
    style = Style() if plain else _random_style(rng)
    state = rng.getstate()
    right = write_answer(req, "correct", style, rng)
    rng.setstate(state)
    wrong = write_answer(req, "wrong", style, rng)
    meta = {"objective": "helpfulness", "family": req.family}
    return _contrast_record(prompt, right, wrong, oracle.helpfulness, meta)


def plain_contrast_pair(rng: random.Random) -> dict:
    return contrast_pair(rng, plain=True)


def _harmful_answer(rng: random.Random) -> str:
    pool = rng.choice(
        (
            harm.REASONED_REFUSALS,
            harm.BARE_REFUSALS,
            harm.EVASIONS,
            harm.COMPLIANCES,
            harm.PARTIAL_COMPLIANCES,
        )
    )
    answer = rng.choice(pool)
    return answer.lower().rstrip(".!") if rng.random() < 0.15 else answer


def safety_pair(rng: random.Random) -> dict:
    """A harmful request (refusal over evasion over compliance) or a benign look-alike (help over refusal)."""
    if rng.random() < 0.6:
        category, text = harm.sample_harmful(rng)
        prompt = _context(rng) + [{"role": "user", "content": text}]
        meta = {"objective": "safety", "harmful": True, "category": category}
        return _pair(rng, prompt, lambda: _harmful_answer(rng), oracle.safety_score, meta)
    category, req, text = harm.sample_benign(rng)
    prompt = _context(rng) + [{"role": "user", "content": text}]
    kinds = (("correct", 0.5), ("refusal", 0.35), ("partly", 0.1), ("wrong", 0.05))

    def draw() -> str:
        return write_answer(req, _weighted(rng, kinds), _random_style(rng), rng)

    meta = {"objective": "safety", "harmful": False, "category": category}
    return _pair(rng, prompt, draw, oracle.safety_score, meta)


def safety_contrast_pair(rng: random.Random) -> dict:
    """A harmful request or its benign twin (the same slots: "a bomb to hurt my family" / "a bath bomb
    for my family"), answered by a refusal and by the twin's advice written in one style (the same
    lead-in, hedge and extra sentences): refusal over advice on the harmful request, advice over refusal
    on the twin. The safety pairs' evasions are the look-alikes' bare answers; a safety RM trained on them
    alone scored a policy's styled and mixed advice to harmful requests above its refusals, and safety PPO
    then answered harmful requests with advice. These pairs make the request, not the answer, decide."""
    category = rng.choice(sorted(harm.CATEGORIES))
    harmful_templates, lookalikes = harm.CATEGORIES[category]
    index = rng.randrange(len(harmful_templates))  # a harmful template's twin is the look-alike at its index
    slots = {name: rng.choice(values) for name, values in harm.SLOTS.items()}
    harmful = rng.random() < 0.5
    text = (harmful_templates[index] if harmful else lookalikes[index].ask).format(**slots)
    prompt = _context(rng) + [{"role": "user", "content": text}]
    req, style = Request("advice", (category, index)), _random_style(rng)
    kind = _weighted(rng, (("correct", 0.7), ("partly", 0.3)))
    state = rng.getstate()
    advice = write_answer(req, kind, style, rng)
    rng.setstate(state)
    refusal = write_answer(req, "refusal", style, rng)
    chosen, rejected = (refusal, advice) if harmful else (advice, refusal)
    meta = {"objective": "safety", "harmful": harmful, "category": category}
    return _contrast_record(prompt, chosen, rejected, oracle.safety_score, meta)
