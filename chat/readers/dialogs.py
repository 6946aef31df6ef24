"""Dialog datasets (SFT data) -> dialogs ending with an assistant turn.

Record forms: ``{"messages": [...], "meta": {...}}``, or TRL prompt-completion, standard
(``{"prompt": str, "completion": str}``) or conversational (``prompt`` and ``completion`` lists of messages).
Skip reasons: special_tag, empty_message, invalid_dialog (roles, order, not ending with the assistant).
"""

from __future__ import annotations

from chat.readers.fields import as_messages, as_prompt, check_dialog
from chat.readers.skips import MalformedRecord, SkipReport, convert_records
from chat.readers.sources import Location, Source, open_source


def as_completion(value: object) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return as_messages(value, "completion")


def dialog_from_record(record: dict, location: Location) -> list[dict]:
    if "messages" in record:
        dialog = as_messages(record["messages"], "messages")
    elif "prompt" in record and "completion" in record:
        dialog = as_prompt(record["prompt"]) + as_completion(record["completion"])
    else:
        keys = ", ".join(map(repr, record)) or "no keys"
        raise MalformedRecord(f"expected 'messages', or 'prompt' and 'completion' (record has {keys})")
    check_dialog(dialog, ends_with="assistant")
    return dialog


def read_dialogs(
    source: Source, split: str | None = None, *, strict: bool = False
) -> tuple[list[list[dict]], SkipReport]:
    """Read training dialogs (local files, directories, or a hub name); each ends with an assistant turn."""
    records, name = open_source(source, split)
    return convert_records(records, dialog_from_record, name=name, strict=strict)
