"""Parsing of the record fields the dataset formats share: messages, prompts, replies, rating, margin, meta.

Shape problems (a missing key, a message that is not a {"role", "content"} object, an unknown rating)
raise MalformedRecord: they mean the file is not in the format it was read as. Content problems in
well-shaped dialogs (wrong role order, empty or special-tag contents) raise SkipRecord.
"""

from __future__ import annotations

import math

from chat.dialog import RATINGS, SPECIAL_TAGS, DialogError, validate_dialog
from chat.readers.skips import MalformedRecord, SkipRecord
from chat.readers.sources import Location

# Phrases annotation tools use for the four levels (Llama 2 paper, section 3.2.1) besides RATINGS itself.
RATING_PHRASES = {
    "negligibly better / unsure": "negligibly_better",
    "negligibly better/unsure": "negligibly_better",
    "unsure": "negligibly_better",
}


def require(record: dict, key: str) -> object:
    if key not in record:
        raise MalformedRecord(
            f"missing required key {key!r} (record has {', '.join(map(repr, record)) or 'no keys'})"
        )
    return record[key]


def require_str(record: dict, key: str) -> str:
    value = require(record, key)
    if not isinstance(value, str):
        raise MalformedRecord(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def as_messages(value: object, key: str) -> list[dict]:
    """A list of {"role": str, "content": str} objects, copied; anything else is malformed."""
    if not isinstance(value, list):
        raise MalformedRecord(f"{key!r} must be a list of messages, got {type(value).__name__}")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise MalformedRecord(
                f"{key!r} message {i}: expected an object with exactly 'role' and 'content'"
            )
        if not isinstance(message["role"], str) or not isinstance(message["content"], str):
            raise MalformedRecord(f"{key!r} message {i}: 'role' and 'content' must be strings")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def as_prompt(value: object, key: str = "prompt") -> list[dict]:
    """A prompt given as messages, or as a plain string (standard form: one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return as_messages(value, key)


def as_reply(value: object, key: str, prompt: list[dict]) -> str:
    """The text of one answer: a string, or a list of one assistant message (TRL conversational form).

    A list that repeats the prompt before the answer (some datasets store full dialogs next to a
    prompt) is accepted when its start equals the prompt exactly.
    """
    if isinstance(value, str):
        return value.strip()
    messages = as_messages(value, key)
    if len(messages) > 1 and messages[: len(prompt)] == prompt:
        messages = messages[len(prompt) :]
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        roles = [message["role"] for message in messages]
        raise MalformedRecord(f"{key!r} must be one assistant message after the prompt, got roles {roles}")
    return messages[0]["content"].strip()


def parse_rating(value: object) -> str | None:
    if value is None:
        return None
    phrase = value.strip().lower() if isinstance(value, str) else value
    rating = RATING_PHRASES.get(
        phrase, phrase.replace(" ", "_").replace("-", "_") if isinstance(phrase, str) else phrase
    )
    if rating not in RATINGS:
        raise MalformedRecord(f"'rating' {value!r} is not one of {', '.join(RATINGS)} (or 'unsure')")
    return rating


def parse_margin(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedRecord(f"'margin' must be a finite number, got {value!r}")
    return float(value)


def parse_is_safety(value: object, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MalformedRecord(f"'is_safety' must be true or false, got {value!r}")
    return value


def record_meta(record: dict, location: Location) -> dict:
    """The record's own meta (copied), plus where it was read from unless the meta already says."""
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise MalformedRecord(f"'meta' must be an object, got {type(meta).__name__}")
    return {**meta, "origin": meta.get("origin", str(location))}


def check_dialog(messages: list[dict], *, ends_with: str, empty_reason: str = "empty_message") -> None:
    """Skip a dialog that validate_dialog rejects, with a reason naming the kind of problem.

    Checked in this order, so that a record with several problems always gets the same reason:
    special tags in any message, then an empty user/assistant turn, then everything else
    validate_dialog checks (roles, order, final role) as "invalid_dialog".
    """
    for i, message in enumerate(messages):
        for tag in SPECIAL_TAGS:
            if tag in message["content"]:
                raise SkipRecord(
                    "special_tag", f"message {i} ({message['role']}) contains the special tag {tag!r}"
                )
    for i, message in enumerate(messages):
        if message["role"] != "system" and not message["content"].strip():
            raise SkipRecord(empty_reason, f"message {i} ({message['role']}) is empty")
    try:
        validate_dialog(messages, ends_with=ends_with)
    except DialogError as error:
        raise SkipRecord("invalid_dialog", str(error)) from None


def check_reply(reply: str, side: str) -> None:
    """An answer must be non-empty and free of special tags to be trained on."""
    if not reply:
        raise SkipRecord(f"empty_{side}", f"the {side} answer is empty")
    for tag in SPECIAL_TAGS:
        if tag in reply:
            raise SkipRecord("special_tag", f"the {side} answer contains the special tag {tag!r}")
