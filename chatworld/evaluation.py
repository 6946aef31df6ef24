"""Oracle evaluation of a policy on the world's held-out prompts and GAtt dialogs.

Stages call ``evaluate_policy`` before and after training (stored as ``oracle.before`` / ``oracle.after``)
with a ``generate(dialogs) -> answers`` callable of their own. They sample (temperature 1, several answers
per prompt): greedy decoding shows only a model's most likely answer, and RLHF changes the whole
distribution a policy samples from (a fine-tuned model that refuses greedily may still comply with a
harmful request one time in five).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from chatworld import oracle

Generate = Callable[[list[list[dict]]], list[str]]
GATT_TURNS = (1, 2, 4, 6, 10, 20)


def mean_or_none(values: list) -> float | None:
    """The mean, or None for no values (a share over no dialogs is unknown, not 0)."""
    return sum(values) / len(values) if values else None


def oracle_scores(prompts: list[list[dict]], answers: list[str]) -> dict:
    """helpfulness: mean over non-harmful prompts; unsafe_compliance and evasive: rates over harmful
    prompts (`oracle.safety`; the rest of them were refused); false_refusal: rate over benign look-alike
    prompts; constraint_added: rate of constraint marks on prompts that asked for none (None where a group
    is empty)."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    helpful, unsafe, evasive, refused, added = [], [], [], [], []
    for prompt, answer in zip(prompts, answers):
        if oracle.is_harmful_request(prompt):
            verdict = oracle.safety(prompt, answer)
            unsafe.append(verdict["unsafe_compliance"])
            evasive.append(verdict["evasive"])
            continue
        helpful.append(oracle.helpfulness(prompt, answer))
        if oracle.is_benign_lookalike(prompt):
            refused.append(oracle.is_refusal(answer))
        if not any(m["role"] == "system" and oracle.constraint_from_system(m["content"]) for m in prompt):
            added.append(oracle.added_constraint(answer))
    return {
        "helpfulness": mean_or_none(helpful),
        "unsafe_compliance": mean_or_none(unsafe),
        "evasive": mean_or_none(evasive),
        "false_refusal": mean_or_none(refused),
        "constraint_added": mean_or_none(added),
        "n": {"helpful": len(helpful), "harmful": len(unsafe), "benign_lookalike": len(refused)},
    }


def read_jsonl(path: Path) -> list[dict]:
    records = []
    with Path(path).open() as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{line_no}: invalid json: {err.msg}") from err
    return records


def _generate_checked(generate: Generate, dialogs: list[list[dict]]) -> list[str]:
    answers = list(generate(dialogs))
    if len(answers) != len(dialogs) or not all(isinstance(a, str) for a in answers):
        raise ValueError(
            f"generate returned {len(answers)} items for {len(dialogs)} dialogs (expected strings)"
        )
    return answers


def evaluate_policy(
    generate: Generate,
    world_dir,
    max_prompts: int | None = None,
    samples_per_prompt: int = 1,
    harmful_samples_per_prompt: int | None = None,
) -> dict:
    """Generate on `prompts/test.jsonl` (first max_prompts), each prompt `samples_per_prompt` times in a
    row (the harmful requests `harmful_samples_per_prompt` times where given), and score every answer with the
    oracle.

    The harmful requests are few (48 of the world's 300) and their rates small: at 8 answers each, 0.05 unsafe
    compliance is 19 of 384 answers, with a sampling error of about a quarter of itself. Only they get more
    answers: the other rates are means over the rest, which more answers to some would weight."""
    if harmful_samples_per_prompt is None:
        harmful_samples_per_prompt = samples_per_prompt
    for name, value in [
        ("samples_per_prompt", samples_per_prompt),
        ("harmful_samples_per_prompt", harmful_samples_per_prompt),
    ]:
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    records = read_jsonl(Path(world_dir) / "prompts" / "test.jsonl")[:max_prompts]
    prompts = [
        r["prompt"]
        for r in records
        for _ in range(
            harmful_samples_per_prompt if oracle.is_harmful_request(r["prompt"]) else samples_per_prompt
        )
    ]
    return oracle_scores(prompts, _generate_checked(generate, prompts))


def adherence_by_turn(
    generate: Generate, eval_dialogs: Sequence[dict], turns: Sequence[int] = GATT_TURNS
) -> dict:
    """Run each GAtt evaluation dialog turn by turn, feeding the model's own answers back.

    Returns {"by_turn": {turn: share adhering}, "count": {turn: dialogs judged}, "heldout_by_turn",
    "seen_by_turn" (the same split by held-out constraint values), "helpfulness_by_turn", "transcripts"}.
    """
    if not eval_dialogs:
        raise ValueError("no GAtt evaluation dialogs")
    last = max(turns)
    dialogs = [[{"role": "system", "content": d["system"]}] for d in eval_dialogs]
    judged = {t: [] for t in turns}
    for turn in range(1, last + 1):
        active = [i for i, d in enumerate(eval_dialogs) if len(d["user_turns"]) >= turn]
        for i in active:
            dialogs[i].append({"role": "user", "content": eval_dialogs[i]["user_turns"][turn - 1]})
        answers = _generate_checked(generate, [dialogs[i] for i in active])
        for i, answer in zip(active, answers):
            if turn in judged:
                judged[turn].append((i, oracle.adheres(eval_dialogs[i]["constraint"], answer),
                                     oracle.helpfulness(dialogs[i], answer)))  # fmt: skip
            dialogs[i].append({"role": "assistant", "content": answer})

    def share(rows, keep=lambda i: True):
        return mean_or_none([ok for i, ok, _ in rows if keep(i)])

    heldout = {i for i, d in enumerate(eval_dialogs) if d.get("meta", {}).get("heldout")}
    return {
        "by_turn": {t: share(rows) for t, rows in judged.items()},
        "count": {t: len(rows) for t, rows in judged.items()},
        "heldout_by_turn": {t: share(rows, lambda i: i in heldout) for t, rows in judged.items()},
        "seen_by_turn": {t: share(rows, lambda i: i not in heldout) for t, rows in judged.items()},
        "helpfulness_by_turn": {t: mean_or_none([h for _, _, h in rows]) for t, rows in judged.items()},
        "transcripts": dialogs,  # each dialog as answered, the model's own answers in place
    }
