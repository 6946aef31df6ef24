"""Prompt sets (for rejection sampling and PPO) -> PromptRecords.

Record forms: ``{"prompt": [messages ending with user] or str, "is_safety": bool, "meta": {...}}``
(``is_safety`` optional); a ``{"messages": [...]}`` record ending with a user turn; and the prompt part
of any preference record read_preferences accepts (HH-RLHF transcripts included). Skip reasons: those
of the preference forms' prompt (not_starting_with_human, no_final_reply, prompt_mismatch), then
special_tag, empty_prompt_turn, invalid_dialog (roles, order, not ending with the user).
"""

from __future__ import annotations

from chat.dialog import PromptRecord
from chat.readers.fields import as_messages, as_prompt, check_dialog, parse_is_safety, record_meta
from chat.readers.preferences import split_preference_record
from chat.readers.skips import MalformedRecord, SkipReport, convert_records
from chat.readers.sources import Location, Source, open_source


def prompt_messages(record: dict) -> list[dict]:
    if "prompt" in record:
        return as_prompt(record["prompt"])
    if "messages" in record:
        return as_messages(record["messages"], "messages")
    if "chosen" in record and "rejected" in record:
        return split_preference_record(record)[0]
    keys = ", ".join(map(repr, record)) or "no keys"
    raise MalformedRecord(f"expected 'prompt', 'messages', or 'chosen' and 'rejected' (record has {keys})")


def prompt_from_record(record: dict, location: Location, default_is_safety: bool) -> PromptRecord:
    is_safety = parse_is_safety(record.get("is_safety"), default_is_safety)
    meta = record_meta(record, location)
    prompt = prompt_messages(record)
    check_dialog(prompt, ends_with="user", empty_reason="empty_prompt_turn")
    return PromptRecord(prompt=prompt, is_safety=is_safety, meta=meta)


def read_prompts(
    source: Source, split: str | None = None, *, default_is_safety: bool = False, strict: bool = False
) -> tuple[list[PromptRecord], SkipReport]:
    """Read prompts (local files, directories, or a hub name); ``default_is_safety`` is used where a
    record has no ``is_safety`` (e.g. True for a red-teaming set)."""
    records, name = open_source(source, split)
    return convert_records(
        records,
        lambda record, location: prompt_from_record(record, location, default_is_safety),
        name=name,
        strict=strict,
    )
