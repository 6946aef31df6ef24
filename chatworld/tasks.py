"""The helpful task families: how a request is asked, parsed back, answered and judged.

Every family answers in the same few sentence shapes whether the answer is right or wrong, so the
words and the length of an answer say little about its quality: only the claimed value, checked
against the request, does. ``judge`` sees one sentence (the answer's main sentence, with lead-ins,
hedges and constraint marks already removed by the oracle) and returns "correct", "partly" or "wrong".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from chatworld.tables import CAPITALS, CATEGORIES, CATEGORY_OF, COLOURS, OPPOSITES, WORD_POOL

VERDICTS = ("correct", "partly", "wrong")
# A tiny model from scratch learns a lookup within the SFT budget only when the key sits at a fixed distance
# from the value and each key is seen often: so each family is asked in ONE template with the key last,
# answered in ONE template that restates the key right before the value (so the lookup itself is local),
# and the tables are small (each key must be seen often).
ADD_MAX = 5  # operands 1-5: 25 sums to learn, not 81


@dataclass(frozen=True)
class Request:
    """One parsed user request: which family, and the slot values the answer depends on."""

    family: str
    slots: tuple


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@lru_cache(maxsize=4096)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern:
    return re.compile(
        r"\b(" + "|".join(re.escape(n.lower()) for n in sorted(names, key=len, reverse=True)) + r")\b"
    )


def _found(names, sentence: str) -> set[str]:
    """The names (from a closed list) that occur in the sentence as whole words, case-insensitively."""
    by_lower = {n.lower(): n for n in names}
    return {by_lower[m] for m in _names_pattern(tuple(sorted(by_lower))).findall(sentence.lower())}


def _set_verdict(found: set[str], expected: str) -> str:
    if found == {expected}:
        return "correct"
    if expected in found and len(found) == 2:
        return "partly"  # hedges between the right value and a wrong one
    return "wrong"


def _numbers_verdict(sentence: str, expected: int, operands: tuple[int, ...] = ()) -> str:
    """Judge the numbers a sentence claims, after removing each operand it restates once."""
    numbers = [int(n) for n in re.findall(r"\d+", sentence)]
    for operand in operands:
        if operand in numbers and operand != expected:
            numbers.remove(operand)
    if numbers == [expected]:
        return "correct"
    if len(numbers) == 2 and expected in numbers:
        return "partly"
    if len(numbers) == 1 and abs(numbers[0] - expected) == 1:
        return "partly"  # off by one: close, still wrong
    return "wrong"


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _fill(rng: random.Random, templates: tuple[str, ...], **slots) -> str:
    return _capitalize(rng.choice(templates).format(**slots))


def _two(rng: random.Random, right, wrong) -> tuple:
    return (right, wrong) if rng.random() < 0.5 else (wrong, right)


class Capital:
    name = "capital"
    asks = ("What is the capital of {c}?",)
    pattern = re.compile(r"capital (?:city )?of ([A-Z][A-Za-z ]*?)[?.]")
    says = ("The capital of {c} is {v}.",)
    hedges = ("The capital of {c} is {v} or {w}.",)

    def sample(self, rng):
        return Request(self.name, (rng.choice(sorted(CAPITALS)),))

    def ask(self, req, rng):
        return rng.choice(self.asks).format(c=req.slots[0])

    def parse(self, text):
        m = self.pattern.search(text)
        return Request(self.name, (m.group(1),)) if m and m.group(1) in CAPITALS else None

    def main(self, req, kind, rng):
        country = req.slots[0]
        right = CAPITALS[country]
        wrong = rng.choice(sorted(set(CAPITALS.values()) - {right}))
        if kind == "partly":
            v, w = _two(rng, right, wrong)
            return _fill(rng, self.hedges, c=country, v=v, w=w)
        return _fill(rng, self.says, c=country, v=right if kind == "correct" else wrong)

    def judge(self, req, sentence):
        cities = _found(CAPITALS.values(), sentence)
        countries = _found(CAPITALS, sentence.replace("Mexico City", "").replace("mexico city", ""))
        if countries - {req.slots[0]}:
            return "wrong"  # names the capital of some other country
        return _set_verdict(cities, CAPITALS[req.slots[0]])


class Opposite:
    name = "opposite"
    asks = ("What is the opposite of {w}?",)
    pattern = re.compile(r"opposite of (?:the word )?([a-z]+)")
    says = ("The opposite of {w} is {v}.",)
    hedges = ("The opposite of {w} is {v} or {x}.",)

    def sample(self, rng):
        return Request(self.name, (rng.choice(sorted(OPPOSITES)),))

    def ask(self, req, rng):
        return rng.choice(self.asks).format(w=req.slots[0])

    def parse(self, text):
        m = self.pattern.search(text)
        return Request(self.name, (m.group(1),)) if m and m.group(1) in OPPOSITES else None

    def main(self, req, kind, rng):
        word = req.slots[0]
        right = OPPOSITES[word]
        wrong = rng.choice(sorted(set(OPPOSITES) - {word, right}))
        if kind == "partly":
            v, x = _two(rng, right, wrong)
            return _fill(rng, self.hedges, w=word, v=v, x=x)
        return _fill(rng, self.says, w=word, v=right if kind == "correct" else wrong)

    def judge(self, req, sentence):
        word = req.slots[0]
        return _set_verdict(_found(OPPOSITES, sentence) - {word}, OPPOSITES[word])


class Addition:
    name = "add"
    asks = ("What is {a} plus {b}?",)
    patterns = (re.compile(r"(\d+) plus (\d+)"), re.compile(r"[Aa]dd (\d+) and (\d+)"))
    says = ("{a} plus {b} is {v}.",)
    hedges = ("{a} plus {b} is {v} or {w}.",)

    def sample(self, rng):
        return Request(self.name, (rng.randint(1, ADD_MAX), rng.randint(1, ADD_MAX)))

    def ask(self, req, rng):
        a, b = req.slots
        return rng.choice(self.asks).format(a=a, b=b)

    def parse(self, text):
        for pattern in self.patterns:
            m = pattern.search(text)
            if m:
                return Request(self.name, (int(m.group(1)), int(m.group(2))))
        return None

    def main(self, req, kind, rng):
        a, b = req.slots
        right = a + b
        if kind == "correct":
            return _fill(rng, self.says, a=a, b=b, v=right)
        off_by_one = [v for v in (right - 1, right + 1) if v not in (a, b)]  # an operand reads as restated
        if kind == "partly":
            if off_by_one and rng.random() < 0.5:
                return _fill(rng, self.says, a=a, b=b, v=rng.choice(off_by_one))
            v, w = _two(rng, right, right + rng.choice((-2, 2, 3)))
            return _fill(rng, self.hedges, a=a, b=b, v=v, w=w)
        wrong = rng.choice([n for n in range(2, 2 * ADD_MAX + 1) if abs(n - right) > 1 and n not in (a, b)])
        return _fill(rng, self.says, a=a, b=b, v=wrong)

    def judge(self, req, sentence):
        a, b = req.slots
        return _numbers_verdict(sentence, a + b, (a, b))


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


class Category:
    """What kind of thing a word names (animal, fruit, ...): a one-step lookup like the capitals."""

    name = "category"
    asks = ("What kind of thing is the {w}?",)
    pattern = re.compile(r"kind of thing is (?:the |an? )?([a-z]+)\?")
    says = ("The {w} is {v}.",)
    hedges = ("The {w} is {v} or {x}.",)

    def sample(self, rng):
        return Request(self.name, (rng.choice(WORD_POOL),))

    def ask(self, req, rng):
        return rng.choice(self.asks).format(w=req.slots[0])

    def parse(self, text):
        m = self.pattern.search(text)
        return Request(self.name, (m.group(1),)) if m and m.group(1) in CATEGORY_OF else None

    def main(self, req, kind, rng):
        thing = req.slots[0]
        right = CATEGORY_OF[thing]
        wrong = rng.choice(sorted(set(CATEGORIES) - {right}))
        if kind == "partly":
            v, x = _two(rng, right, wrong)
            return _fill(rng, self.hedges, w=thing, v=_article(v), x=_article(x))
        return _fill(rng, self.says, w=thing, v=_article(right if kind == "correct" else wrong))

    def judge(self, req, sentence):
        return _set_verdict(_found(CATEGORIES, sentence), CATEGORY_OF[req.slots[0]])


class NextNumber:
    """The number after a digit: single-digit answers, so right and wrong answers have the same length."""

    name = "next"
    asks = ("What number comes after {n}?",)
    pattern = re.compile(r"number comes after (\d+)\?")
    says = ("The number after {n} is {v}.",)
    hedges = ("The number after {n} is {v} or {w}.",)

    def sample(self, rng):
        return Request(self.name, (rng.randint(1, 8),))

    def ask(self, req, rng):
        return rng.choice(self.asks).format(n=req.slots[0])

    def parse(self, text):
        m = self.pattern.search(text)
        return Request(self.name, (int(m.group(1)),)) if m else None

    def main(self, req, kind, rng):
        n = req.slots[0]
        right = n + 1
        if kind == "correct":
            return _fill(rng, self.says, n=n, v=right)
        if kind == "partly":
            if rng.random() < 0.5:
                return _fill(rng, self.says, n=n, v=right + 1)  # right - 1 would read as n restated
            v, w = _two(rng, right, right + rng.choice((2, 3)))
            return _fill(rng, self.hedges, n=n, v=v, w=w)
        wrong = rng.choice([k for k in range(1, 10) if abs(k - right) > 1])
        return _fill(rng, self.says, n=n, v=wrong)

    def judge(self, req, sentence):
        n = req.slots[0]
        return _numbers_verdict(sentence, n + 1, (n,))


class Colour:
    """The colour of a thing: a small lookup table (15 things, 5 colours)."""

    name = "colour"
    asks = ("What colour is the {x}?",)
    pattern = re.compile(r"colou?r is (?:the |an? )?([a-z]+)\?")
    says = ("The {x} is {v}.",)
    hedges = ("The {x} is {v} or {w}.",)

    def sample(self, rng):
        return Request(self.name, (rng.choice(sorted(COLOURS)),))

    def ask(self, req, rng):
        return rng.choice(self.asks).format(x=req.slots[0])

    def parse(self, text):
        m = self.pattern.search(text)
        return Request(self.name, (m.group(1),)) if m and m.group(1) in COLOURS else None

    def main(self, req, kind, rng):
        right = COLOURS[req.slots[0]]
        wrong = rng.choice(sorted(set(COLOURS.values()) - {right}))
        if kind == "partly":
            v, w = _two(rng, right, wrong)
            return _fill(rng, self.hedges, x=req.slots[0], v=v, w=w)
        return _fill(rng, self.says, x=req.slots[0], v=right if kind == "correct" else wrong)

    def judge(self, req, sentence):
        return _set_verdict(_found(set(COLOURS.values()), sentence), COLOURS[req.slots[0]])


FAMILIES = {f.name: f for f in (Capital(), Opposite(), Addition(), Category(), NextNumber(), Colour())}
