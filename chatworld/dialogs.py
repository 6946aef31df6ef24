"""SFT dialogs and GAtt material.

The SFT mix follows GATT_NOTES: plain dialogs of 1-20 turns (half with a neutral system message),
dialogs where one user turn carries an instruction that only that turn's answer follows, and one-turn
dialogs with the constraint in the system message. There are NO multi-turn dialogs whose later answers
follow a system constraint: teaching that is Ghost Attention's job.
"""

from __future__ import annotations

import random

from chatworld import constraints as cons
from chatworld.tables import NEUTRAL_SYSTEMS
from chatworld.turns import Turn, clean_task_turn, sft_turn, task_turn

# Dialog kinds of the SFT set and their shares.
# Mostly single turns: a tiny model learns the lookups per token far faster from them; a few hundred
# long dialogs are enough for the base to have seen turn 20 (GATT_NOTES item 7). Two fifths carry a
# constraint, so the base follows one at turn 1, which GAtt then carries to later turns. Measured with the
# default SFT (greedy turn-1 answers to the 90 trained-value GAtt evaluation dialogs): 6% + 6% and 30-42
# values per family, 1-2%; 20% + 20% and 12 values, 39-44% after 657-876 steps (one or two families
# learned, which ones by chance); 20% + 20% and 8 values, 99% after 767 steps, 47% after 657.
SFT_MIX = (("single", 0.56), ("multi", 0.04), ("instruction_in_turn", 0.2), ("system_constraint", 0.2))
LONG_DIALOG_RATE = 0.6  # share of multi-turn dialogs with 12-20 turns (turn 20 must be seen in training)
SINGLE_SYSTEM_RATE = 0.15  # share of one-turn dialogs with a neutral system message


def _num_turns(rng: random.Random) -> int:
    return rng.randint(12, 20) if rng.random() < LONG_DIALOG_RATE else rng.randint(2, 5)


def _messages(turns: list[Turn], system: str | None) -> list[dict]:
    out = [{"role": "system", "content": system}] if system else []
    for t in turns:
        out += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.answer}]
    return out


def _neutral_system(rng: random.Random, rate: float = 0.5) -> str | None:
    return rng.choice(NEUTRAL_SYSTEMS) if rng.random() < rate else None


def _constrained(turn: Turn, constraint: dict) -> Turn:
    return Turn(turn.user, cons.decorate(turn.answer, constraint), turn.kind, turn.family)


def _plain(rng: random.Random, n: int) -> dict:
    turns = [sft_turn(rng) for _ in range(n)]
    # A system message doubles a one-turn dialog's tokens: rarer there, so more examples fit the budget.
    system = _neutral_system(rng, SINGLE_SYSTEM_RATE if n == 1 else 0.5)
    meta = {"kind": "single" if n == 1 else "multi", "turns": n, "system": "neutral" if system else "none"}
    meta["requests"] = [t.kind for t in turns]  # task, harmful or benign, per turn
    return {"messages": _messages(turns, system), "meta": meta}


def _instruction_in_turn(rng: random.Random) -> dict:
    """One user turn starts with an instruction; only that turn's answer follows it."""
    n = rng.choice((1, 2, 3))
    turns = [task_turn(rng) for _ in range(n)]
    at = rng.randrange(n)
    constraint = cons.sample_constraint(rng)
    short = rng.random() < 0.5
    text = cons.instruction(constraint, short, rng) + (". " if short else " ") + turns[at].user
    turns[at] = _constrained(Turn(text, turns[at].answer, "task", turns[at].family), constraint)
    system = _neutral_system(rng)
    meta = {
        "kind": "instruction_in_turn",
        "turns": n,
        "at_turn": at + 1,
        "constraint": constraint,
        "short": short,
    }
    meta["system"] = "neutral" if system else "none"
    return {"messages": _messages(turns, system), "meta": meta}


def _system_constraint(rng: random.Random) -> dict:
    """A one-turn dialog whose system message is a constraint the answer follows."""
    constraint = cons.sample_constraint(rng)
    short = rng.random() < 0.5
    turn = _constrained(task_turn(rng), constraint)
    meta = {
        "kind": "system_constraint",
        "turns": 1,
        "constraint": constraint,
        "short": short,
        "system": "constraint",
    }
    return {"messages": _messages([turn], cons.instruction(constraint, short, rng)), "meta": meta}


def sft_dialog(rng: random.Random) -> dict:
    kind = rng.choices([k for k, _ in SFT_MIX], [w for _, w in SFT_MIX])[0]
    if kind == "single":
        return _plain(rng, 1)
    if kind == "multi":
        return _plain(rng, _num_turns(rng))
    if kind == "instruction_in_turn":
        return _instruction_in_turn(rng)
    return _system_constraint(rng)


def gatt_source_dialog(rng: random.Random) -> dict:
    """An unconstrained multi-turn dialog of clean task answers, for GAtt to attach an instruction to."""
    n = rng.randint(2, 20)
    return {"messages": _messages([clean_task_turn(rng) for _ in range(n)], None), "meta": {"turns": n}}


def gatt_eval_dialog(rng: random.Random, heldout: bool, turns: int = 20) -> dict:
    """A constraint in the system message and `turns` user requests; the model writes every answer."""
    constraint = cons.sample_constraint(rng, "heldout" if heldout else "train")
    short = rng.random() < 0.5
    return {
        "system": cons.instruction(constraint, short, rng),
        "constraint": constraint,
        "user_turns": [clean_task_turn(rng).user for _ in range(turns)],
        "meta": {"heldout": heldout, "short": short},
    }
