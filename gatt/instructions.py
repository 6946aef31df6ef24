"""Constraint lists and instruction texts: what GAtt asks every answer of a dialog to honour.

The lists are data files users can replace (one `<family>.json` per family, the format of
`chatworld/constraints/*.json`: full templates, a short form, and train / held-out values). A dialog's
instruction picks one family's value, or combines two (the paper combines them randomly), in the full
wording ("Always act as Napoleon.") or, half the time, the short one ("Figure: Napoleon").
"""

from __future__ import annotations

import random
from pathlib import Path

from chatworld.constraints import ConstraintError, Family, load_family

SHIPPED_LISTS = Path(__file__).resolve().parents[1] / "chatworld" / "constraints"


def load_constraint_lists(folder, names: list[str]) -> dict[str, Family]:
    """The named families from `<folder>/<name>.json`, in the given order; a missing file names its path."""
    if not names:
        raise ConstraintError("synthesis.families: name at least one constraint family")
    families = {}
    for name in names:
        path = Path(folder) / f"{name}.json"
        if not path.is_file():
            raise ConstraintError(f"synthesis.families: no constraint list {path}")
        family = load_family(path)
        if not family.train:
            raise ConstraintError(f"{path}: the 'train' list is empty")
        families[name] = family
    return families


def sample_constraint(rng: random.Random, families: dict[str, Family], combine_p: float) -> dict[str, str]:
    """One family's training value, or (with probability combine_p) values of two families, in list order."""
    count = 2 if len(families) > 1 and rng.random() < combine_p else 1
    chosen = set(rng.sample(list(families), count))
    return {name: rng.choice(family.train) for name, family in families.items() if name in chosen}


def instruction_text(
    constraint: dict[str, str], families: dict[str, Family], short: bool, rng: random.Random
) -> str:
    """ "Always act as X." / "Figure: X", two families joined by ". " (the built-in world's wording)."""
    parts = []
    for name, value in constraint.items():
        if name not in families:
            raise ConstraintError(f"constraint family {name!r} is not among {', '.join(families)}")
        family = families[name]
        template = family.short if short else rng.choice(family.full)
        parts.append(template.format(name=value).rstrip("."))
    return ". ".join(parts) + ("" if short else ".")


def attach_instruction(instruction: str, user_text: str) -> str:
    """The instruction in front of a user message, as one sentence before it ("Figure: X. <request>")."""
    head = instruction.strip()
    return f"{head}{'' if head.endswith(('.', '!', '?')) else '.'} {user_text}"
