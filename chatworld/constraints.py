"""GAtt constraint families (public figure, hobby, speaking style): instructions, marks and checks.

A constraint is expressed by an ending the oracle can check turn by turn (GATT_NOTES item 5: endings
are learned best): a style's end word, then "(I love <hobby>)", then "- <figure>", always in that order.
The value lists are data files (``constraints/*.json``) with a train part and a held-out part, so users
can swap them without touching code.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "constraints"
# The order of marks at the end of an answer, innermost first.
MARK_ORDER = ("style", "hobby", "figure")


class ConstraintError(ValueError):
    """A constraint file or a constraint dict that cannot be used; the message names the key or file."""


@dataclass(frozen=True)
class Family:
    name: str
    full: tuple[str, ...]  # full instruction templates, e.g. "Always act as {name}."
    short: str  # short form, e.g. "Figure: {name}"
    marks: dict[str, str]  # value name -> the ending that expresses it
    train: tuple[str, ...]
    heldout: tuple[str, ...]


def _values(raw: list, mark_template: str | None, path: Path, key: str) -> list[tuple[str, str]]:
    out = []
    for i, value in enumerate(raw):
        if isinstance(value, str) and mark_template:
            out.append((value, mark_template.format(name=value)))
        elif isinstance(value, dict) and {"name", "mark"} <= set(value):
            out.append((value["name"], value["mark"]))
        else:
            raise ConstraintError(
                f"{path}: {key}[{i}]: expected a name (with a family 'mark') or {{name, mark}}"
            )
    return out


def load_family(path: Path) -> Family:
    data = json.loads(path.read_text())
    for key in ("family", "full", "short", "train", "heldout"):
        if key not in data:
            raise ConstraintError(f"{path}: missing key {key!r}")
    train = _values(data["train"], data.get("mark"), path, "train")
    heldout = _values(data["heldout"], data.get("mark"), path, "heldout")
    names = [n for n, _ in train + heldout]
    if len(set(names)) != len(names) or any("." in n for n in names):
        raise ConstraintError(f"{path}: value names must be unique and contain no '.'")
    return Family(
        data["family"], tuple(data["full"]), data["short"], dict(train + heldout),
        tuple(n for n, _ in train), tuple(n for n, _ in heldout),
    )  # fmt: skip


@cache
def families() -> dict[str, Family]:
    found = {f.name: f for f in (load_family(DATA_DIR / f"{name}.json") for name in MARK_ORDER)}
    return {name: found[name] for name in MARK_ORDER}


def sample_constraint(rng: random.Random, split: str = "train", combine_p: float = 0.2) -> dict[str, str]:
    """One family's value, or two families' values with probability combine_p."""
    fams = families()
    chosen = rng.sample(list(fams), 2 if rng.random() < combine_p else 1)
    return {name: rng.choice(getattr(fams[name], split)) for name in MARK_ORDER if name in chosen}


def instruction(constraint: dict[str, str], short: bool, rng: random.Random) -> str:
    """The instruction text: full ("Always act as X.") or short ("Figure: X"), families joined by '. '."""
    fams = families()
    parts = []
    for name, value in constraint.items():
        if short:
            parts.append(fams[name].short.format(name=value))
        else:
            parts.append(rng.choice(fams[name].full).format(name=value).rstrip("."))
    return ". ".join(parts) + ("" if short else ".")


def _mark(family: str, value: str) -> str:
    fams = families()
    if family not in fams:
        raise ConstraintError(f"unknown constraint family {family!r} (known: {', '.join(fams)})")
    if value not in fams[family].marks:
        raise ConstraintError(f"unknown {family} value {value!r}: not in {DATA_DIR / (family + '.json')}")
    return fams[family].marks[value]


def decorate(answer: str, constraint: dict[str, str]) -> str:
    """The answer with the constraint's marks appended in MARK_ORDER."""
    marks = [_mark(name, constraint[name]) for name in MARK_ORDER if name in constraint]
    return " ".join([answer, *marks])


def adheres(constraint: dict[str, str], answer: str) -> bool:
    """True iff the answer ends with every mark the constraint asks for, in order, after some content."""
    text = answer.strip()
    for name in reversed(MARK_ORDER):
        if name in constraint:
            mark = _mark(name, constraint[name])
            if not text.endswith(mark):
                return False
            text = text[: -len(mark)].rstrip()
    return bool(text)


def _parsers():
    """(family, compiled regex) for every full and short instruction form, capturing the value name."""
    out = []
    for fam in families().values():
        for template in (*fam.full, fam.short):
            head, _, tail = template.partition("{name}")
            tail = tail.rstrip(".")
            out.append(
                (fam.name, re.compile(re.escape(head) + r"([^.\n]+?)" + re.escape(tail) + r"(?=\.|$|\n)"))
            )
    return out


def parse_instruction(text: str) -> dict[str, str] | None:
    """The constraint stated in a system message (or a user turn's instruction), or None."""
    found = {}
    for name, pattern in _parsers():
        m = pattern.search(text)
        if m and name not in found:
            found[name] = m.group(1).strip()
    return {name: found[name] for name in MARK_ORDER if name in found} or None


@cache
def _mark_pattern() -> tuple[re.Pattern, dict[str, tuple[str, str]]]:
    """One regex for "some known mark at the very end", longest marks first, and mark -> (family, value)."""
    owners = {mark: (fam.name, value) for fam in families().values() for value, mark in fam.marks.items()}
    alternation = "|".join(re.escape(m) for m in sorted(owners, key=len, reverse=True))
    return re.compile(rf"(?<=\S)\s*({alternation})$"), owners


# Marks with values outside the lists (a model inventing a figure) still look like marks, not content.
UNKNOWN_MARKS = (
    ("hobby", re.compile(r"(?<=\S)\s*\(I love [^()]*\)$")),
    ("figure", re.compile(r"(?<=\S)\s+- [A-Z][^.!?()-]*$")),
)


def strip_marks(answer: str) -> tuple[str, dict[str, str]]:
    """Remove every constraint mark from the end of an answer; return (body, {family: value} found)."""
    pattern, owners = _mark_pattern()
    text, found = answer.strip(), {}
    while True:
        m = pattern.search(text)
        if m and owners[m.group(1)][0] not in found:
            family, value = owners[m.group(1)]
        else:
            m, family, value = next(
                ((u.search(text), f, "?") for f, u in UNKNOWN_MARKS if f not in found and u.search(text)),
                (None, None, None),
            )
        if m is None:
            return text, found
        text, found[family] = text[: m.start()].rstrip(), value
