"""TRL-style preference datasets -> PreferencePairs.

Record forms accepted (per record, so a file may mix them):

- conversational, explicit prompt: ``{"prompt": [messages ending with user], "chosen": [{"role":
  "assistant", "content": ...}], "rejected": [...]}``; a chosen/rejected list that repeats the prompt
  before its answer is accepted when its start equals the prompt exactly;
- standard: ``{"prompt": str, "chosen": str, "rejected": str}``, the prompt being one user message;
- conversational, implicit prompt: ``{"chosen": [full dialog], "rejected": [full dialog]}``: the prompt is
  everything before each side's final assistant message, and must be the same on both sides;
- HH-RLHF: ``{"chosen": str, "rejected": str}`` transcripts with "\\n\\nHuman:" turns, read as read_hh_rlhf does.

Optional keys: ``rating`` (one of RATINGS, or "significantly better", "negligibly better / unsure",
"unsure"...), ``margin`` (a number), ``meta`` (an object). Skip reasons: no_final_reply and
prompt_mismatch (implicit prompts), those of read_hh_rlhf for HH records, then those of ``checked_pair``.
"""

from __future__ import annotations

from chat.dialog import PreferencePair
from chat.readers.fields import (
    as_messages,
    as_prompt,
    as_reply,
    parse_margin,
    parse_rating,
    record_meta,
    require,
)
from chat.readers.hh import first_difference, looks_like_hh_transcript, split_hh_record
from chat.readers.pairs import checked_pair
from chat.readers.skips import MalformedRecord, SkipRecord, SkipReport, convert_records
from chat.readers.sources import Location, Source, open_source


def split_implicit_prompt(record: dict) -> tuple[list[dict], str, str]:
    """(prompt, chosen answer, rejected answer) from two full dialogs that differ only in their last message."""
    chosen = as_messages(require(record, "chosen"), "chosen")
    rejected = as_messages(require(record, "rejected"), "rejected")
    for side, dialog in (("chosen", chosen), ("rejected", rejected)):
        if not dialog or dialog[-1]["role"] != "assistant":
            raise SkipRecord("no_final_reply", f"the {side} dialog does not end with an assistant message")
    if chosen[:-1] != rejected[:-1]:
        raise SkipRecord(
            "prompt_mismatch",
            f"the dialogs differ before their final answers (from message {first_difference(chosen, rejected)})",
        )
    return chosen[:-1], chosen[-1]["content"].strip(), rejected[-1]["content"].strip()


def split_preference_record(record: dict) -> tuple[list[dict], str, str]:
    """(prompt, chosen answer, rejected answer) of a record in any of the accepted forms."""
    if "prompt" in record:
        prompt = as_prompt(record["prompt"])
        chosen = as_reply(require(record, "chosen"), "chosen", prompt)
        return prompt, chosen, as_reply(require(record, "rejected"), "rejected", prompt)
    chosen = require(record, "chosen")
    if looks_like_hh_transcript(chosen):
        return split_hh_record(record)
    if isinstance(chosen, str):
        raise MalformedRecord(
            "missing required key 'prompt' ('chosen' is a string, and not an HH-RLHF transcript)"
        )
    return split_implicit_prompt(record)


def preference_pair(record: dict, location: Location) -> PreferencePair:
    # Optional fields first: a malformed rating must raise even on a record that is then skipped.
    rating, margin = parse_rating(record.get("rating")), parse_margin(record.get("margin"))
    meta = record_meta(record, location)
    prompt, chosen, rejected = split_preference_record(record)
    return checked_pair(prompt, chosen, rejected, meta=meta, rating=rating, margin=margin)


def read_preferences(
    source: Source, split: str | None = None, *, strict: bool = False
) -> tuple[list[PreferencePair], SkipReport]:
    """Read preference pairs in any of the forms above (local files, directories, or a hub name)."""
    records, name = open_source(source, split)
    return convert_records(records, preference_pair, name=name, strict=strict)
