"""Ghost Attention's data transforms, as pure functions over dialogs (Llama 2 section 3.3).

Sampling sees the instruction in every user turn; the training example keeps it only once, as the
system message, over the same answers, and trains only the last answer: every earlier token (assistant
turns included) carries no loss. Several examples are cut from one sampled dialog, each ending at a
different turn (GATT_NOTES item 4: cheap, since they cost no generation).
"""

from __future__ import annotations

import random

from chat.dialog import DialogError
from chat.format import IGNORE_INDEX
from gatt.instructions import attach_instruction


def user_turns(messages: list[dict]) -> list[str]:
    """The user messages of a source dialog (its answers are re-sampled; a system message is dropped)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise DialogError("a GAtt source dialog needs at least one user turn")
    return users


def sampling_prompt(instruction: str, users: list[str], answers: list[str]) -> list[dict]:
    """The dialog the policy answers next: the instruction in every user turn, its own earlier answers."""
    if len(answers) >= len(users):
        raise ValueError(f"{len(answers)} answers leave none of the {len(users)} user turns to answer")
    prompt = []
    for user, answer in zip(users, answers):
        prompt += [
            {"role": "user", "content": attach_instruction(instruction, user)},
            {"role": "assistant", "content": answer},
        ]
    return prompt + [{"role": "user", "content": attach_instruction(instruction, users[len(answers)])}]


def training_dialog(instruction: str, users: list[str], answers: list[str], cut: int) -> list[dict]:
    """Turns 1..cut with the instruction moved into a system message and removed from the user turns."""
    if not 1 <= cut <= min(len(users), len(answers)):
        raise ValueError(f"cut {cut} outside 1..{min(len(users), len(answers))}")
    messages = [{"role": "system", "content": instruction}]
    for user, answer in zip(users[:cut], answers[:cut]):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return messages


def choose_cuts(trainable: list[bool], count: int, rng: random.Random) -> list[int]:
    """Up to `count` distinct turn numbers (1-based) whose answers may be trained, ascending.

    The last trainable turn is always among them: the longest context is the rarest in the base data.
    """
    turns = [i + 1 for i, ok in enumerate(trainable) if ok]
    if count < 1 or not turns:
        return []
    if len(turns) <= count:
        return turns
    return sorted([turns[-1], *rng.sample(turns[:-1], count - 1)])


def gatt_row(encoder, messages: list[dict], meta: dict) -> dict:
    """The on-disk GAtt example: messages (re-renderable by chat.render) and explicit last-answer labels."""
    encoded = encoder.encode_for_training(messages, loss_on="last")
    return {"messages": messages, **encoded, "meta": meta}


def replay_row(encoder, messages: list[dict], meta: dict) -> dict:
    """A base SFT dialog replayed as it was trained (loss on every answer), so the model does not learn
    to add a constraint nobody asked for (GATT_NOTES item 1)."""
    encoded = encoder.encode_for_training(messages, loss_on="all")
    return {"messages": messages, **encoded, "meta": {**meta, "replay": True}}


def replay_count(gatt_rows: int, share: float) -> int:
    """How many replay rows make them `share` of the whole mix."""
    if not 0 <= share < 1:
        raise ValueError(f"synthesis.replay_share must be in [0, 1), got {share}")
    return round(gatt_rows * share / (1 - share))


def check_row(row: dict, where: str) -> dict:
    """A dataset row fit for the fine-tune: ids and labels of one length, some label to learn from."""
    for key in ("input_ids", "labels"):
        if not isinstance(row.get(key), list) or not row[key]:
            raise ValueError(f"{where}: missing or empty {key!r}")
    if len(row["input_ids"]) != len(row["labels"]):
        raise ValueError(f"{where}: {len(row['input_ids'])} input_ids but {len(row['labels'])} labels")
    if all(label == IGNORE_INDEX for label in row["labels"]):
        raise ValueError(f"{where}: every label is {IGNORE_INDEX}: nothing to train")
    return {"input_ids": row["input_ids"], "labels": row["labels"]}
