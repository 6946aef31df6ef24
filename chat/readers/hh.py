"""Anthropic HH-RLHF transcripts -> PreferencePairs.

A record is {"chosen": transcript, "rejected": transcript}; a transcript is a run of turns, each opened by
"\\n\\nHuman: " or "\\n\\nAssistant: ". The two transcripts share everything up to the last Assistant
turn, which holds the two answers. How the edge cases of the real data are handled
(/work/shared/fixtures/hh-rlhf/README.md lists them):

- Turns split only on the full markers ("\\n\\n", role, ":" then a space, a newline or the end), so a
  reply that itself starts with "Human: " keeps that text, and blank lines inside a turn are kept.
- Turn texts are stripped (the Llama 2 format strips them anyway); an empty final answer is skipped as
  "empty_chosen" / "empty_rejected".
- An empty assistant turn inside the prompt is skipped as "empty_prompt_turn": the dialog format rejects
  empty messages, and dropping the turn would merge two user turns into a conversation that never happened.
- A mislabelled marker ("\\n\\nHumans: ") is not a marker, so that transcript's prompt differs from the
  other side's and the pair is skipped as "prompt_mismatch". It cannot be repaired soundly: even read as a
  Human turn, the rejected answer would answer a different conversation from the chosen one.
- A transcript that starts with "Human:" without the leading blank line is read as if it had one; one that
  starts any other way is skipped as "not_starting_with_human", one whose last turn is Human's as
  "no_final_reply".

Skip reasons, in the order they are checked: not_starting_with_human, no_final_reply, prompt_mismatch,
then those of ``checked_pair`` (special_tag, empty_prompt_turn, invalid_dialog, empty_chosen,
empty_rejected, identical). A missing or non-string chosen/rejected is malformed and raises.
"""

from __future__ import annotations

import re

from chat.dialog import PreferencePair
from chat.readers.fields import require_str
from chat.readers.pairs import checked_pair
from chat.readers.skips import SkipRecord, SkipReport, convert_records
from chat.readers.sources import Location, Source, open_source

TURN_MARKER = re.compile(r"\n\n(Human|Assistant):(?: |(?=\n)|\Z)")
ROLES = {"Human": "user", "Assistant": "assistant"}


def looks_like_hh_transcript(text: object) -> bool:
    return isinstance(text, str) and (text.lstrip().startswith("Human:") or "\n\nHuman:" in text)


def parse_transcript(text: str, side: str) -> list[dict]:
    """The turns of one transcript as messages (contents stripped), without checking their order."""
    if text.lstrip().startswith("Human:"):
        text = "\n\n" + text.lstrip()
    markers = list(TURN_MARKER.finditer(text))
    if not markers or markers[0].start() != 0 or markers[0].group(1) != "Human":
        raise SkipRecord("not_starting_with_human", f"the {side} transcript starts with {text[:40]!r}")
    ends = [marker.start() for marker in markers[1:]] + [len(text)]
    return [
        {"role": ROLES[marker.group(1)], "content": text[marker.end() : end].strip()}
        for marker, end in zip(markers, ends)
    ]


def first_difference(a: list[dict], b: list[dict]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def split_hh_record(record: dict) -> tuple[list[dict], str, str]:
    """(shared prompt, chosen answer, rejected answer) of an HH record, or a SkipRecord saying why not."""
    chosen = parse_transcript(require_str(record, "chosen"), "chosen")
    rejected = parse_transcript(require_str(record, "rejected"), "rejected")
    for side, turns in (("chosen", chosen), ("rejected", rejected)):
        if turns[-1]["role"] != "assistant":
            raise SkipRecord("no_final_reply", f"the {side} transcript ends with a Human turn")
    prompt = chosen[:-1]
    if rejected[:-1] != prompt:
        raise SkipRecord(
            "prompt_mismatch",
            f"the transcripts differ before their last Assistant turn (from message "
            f"{first_difference(prompt, rejected[:-1])}; chosen has {len(prompt)} prompt messages, "
            f"rejected {len(rejected) - 1})",
        )
    return prompt, chosen[-1]["content"], rejected[-1]["content"]


def hh_pair(record: dict, location: Location) -> PreferencePair:
    prompt, chosen, rejected = split_hh_record(record)
    return checked_pair(prompt, chosen, rejected, meta={"origin": str(location)})


def read_hh_rlhf(
    source: Source, split: str | None = None, *, strict: bool = False
) -> tuple[list[PreferencePair], SkipReport]:
    """Read HH-RLHF records (local files, a directory of them, or a hub name) into PreferencePairs."""
    records, name = open_source(source, split)
    return convert_records(records, hh_pair, name=name, strict=strict)
