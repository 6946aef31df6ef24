"""How answers of every quality are written, and how the oracle takes one apart again.

An answer is: optional lead-in ("Sure."), an optional hedge ("I think ..."), the main sentence (which
carries the claimed value), optional extra sentences (verbosity), all possibly sloppy (lowercase, no
final punctuation). Lead-ins are neutral; hedges, extra sentences and sloppiness cost score. Good
answers also come with lead-ins and in long shapes, so length alone does not tell quality. The oracle
takes the first sentence that is neither a lead-in nor a filler as the main one, so a generated answer
that chats before its claim ("That is a good question. The capital ...") is graded on the claim.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from chatworld import harm
from chatworld.tasks import FAMILIES, Request

LEAD_INS = ("Sure.", "Of course.", "Okay.", "Happy to help.")
HEDGES = ("I think", "Maybe", "Probably")
FILLERS = (
    "I hope this helps.",
    "Let me know if you have more questions.",
    "That is a good question.",
    "This is easy to check.",
    "Thanks for asking.",
)
KINDS = ("correct", "partly", "wrong", "irrelevant", "refusal")


@dataclass(frozen=True)
class Style:
    """How an answer is written, independent of whether its value is right."""

    lead_in: bool = False
    hedge: bool = False
    verbose: bool = False
    sloppy: bool = False


def family_of(req: Request):
    return harm.ADVICE if req.family == "advice" else FAMILIES[req.family]


def sample_task(rng: random.Random) -> Request:
    return FAMILIES[rng.choice(sorted(FAMILIES))].sample(rng)


def _extra_sentence(rng: random.Random) -> str:
    """A filler or a right answer to some other question: on-vocabulary words, off-topic content."""
    if rng.random() < 0.5:
        return rng.choice(FILLERS)
    other = sample_task(rng)
    return FAMILIES[other.family].main(other, "correct", rng)


def write_answer(req: Request, kind: str, style: Style, rng: random.Random) -> str:
    """An answer of the given kind (one of KINDS) to a task or benign request, written in the given style."""
    if kind == "refusal":
        main = rng.choice(harm.REASONED_REFUSALS + harm.BARE_REFUSALS)
    elif kind == "irrelevant":
        other = sample_task(rng)
        main = FAMILIES[other.family].main(other, "correct", rng)
    else:
        main = family_of(req).main(req, kind, rng)
    if style.hedge and kind != "refusal":
        main = f"{rng.choice(HEDGES)} {main[0].lower()}{main[1:]}"
    sentences = [main]
    if style.lead_in:
        sentences.insert(0, rng.choice(LEAD_INS))
    if style.verbose:
        sentences += [_extra_sentence(rng) for _ in range(rng.choice((1, 1, 2)))]
    text = " ".join(sentences)
    return make_sloppy(text) if style.sloppy else text


def make_sloppy(text: str) -> str:
    return text.lower().rstrip(".!")


# ---- taking an answer apart (used by the oracle) ----


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _is_one_of(sentence: str, options: tuple[str, ...]) -> bool:
    return sentence.lower().rstrip(".!") in {x.lower().rstrip(".!") for x in options}


def strip_hedge(sentence: str) -> tuple[str, bool]:
    for hedge in HEDGES:
        if sentence.lower().startswith(hedge.lower() + " "):
            return sentence[len(hedge) + 1 :], True
    return sentence, False


@dataclass(frozen=True)
class Parts:
    main: str  # the main sentence, hedge removed ("" when the answer has no content)
    hedged: bool
    extra: int  # sentences besides the lead-ins and the main one
    sloppy: bool


def parts(body: str) -> Parts:
    """Split an answer body (constraint marks already removed) into what the oracle grades."""
    sentences = split_sentences(body)
    while sentences and _is_one_of(sentences[0], LEAD_INS):
        sentences.pop(0)
    content = [s for s in sentences if not _is_one_of(s, FILLERS)]
    if not content:
        return Parts("", False, 0, False)
    main, hedged = strip_hedge(content[0])
    first = re.search(r"[A-Za-z0-9]", body)
    sloppy = bool(first and first.group().islower()) or not body.rstrip().endswith((".", "!", "?"))
    return Parts(main, hedged, len(sentences) - 1, sloppy)
