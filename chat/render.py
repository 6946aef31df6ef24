"""Encode a jsonl file of dialogs in the Llama 2-Chat format and print one json line of ids per dialog.

    python -m chat.render --tokenizer PATH --dialogs FILE.jsonl [--for-generation]

Each input line is ``{"messages": [...]}`` (other keys are ignored); each output line is
``{"input_ids": [...], "labels": [...]}``, or ``{"input_ids": [...]}`` with --for-generation (dialogs
ending with a user turn). Blank lines are skipped. The first bad line stops the run with exit status 1
and "FILE:LINE: reason" on stderr; lines printed before it are not retracted, so check the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from chat.dialog import DialogError
from chat.format import ChatEncoder


class RenderError(ValueError):
    """A dialogs line that cannot be encoded; the message names FILE:LINE and the reason."""


def render_lines(
    lines: Iterable[str | bytes], encoder: ChatEncoder, *, for_generation: bool, source: str
) -> Iterator[dict[str, list[int]]]:
    """Yield one encoded record per non-blank line; raise RenderError naming source:line on a bad one.

    Lines may be bytes, so that invalid UTF-8 is reported with its line number too.
    """
    for line_number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
            if not text.strip():
                continue
            yield encode_record(parse_messages(text), encoder, for_generation=for_generation)
        except (ValueError, DialogError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RenderError(f"{source}:{line_number}: {error}") from error


def parse_messages(line: str) -> list[dict]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON ({error})") from error
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" not in record:
        raise ValueError("missing key 'messages'")
    return record["messages"]


def encode_record(
    messages: list[dict], encoder: ChatEncoder, *, for_generation: bool
) -> dict[str, list[int]]:
    if for_generation:
        return {"input_ids": encoder.encode_for_generation(messages)}
    return encoder.encode_for_training(messages)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chat.render", description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory or SentencePiece .model file")
    parser.add_argument(
        "--dialogs", required=True, type=Path, help='jsonl file, one {"messages": [...]} a line'
    )
    parser.add_argument(
        "--for-generation", action="store_true", help="dialogs end with a user turn; print only input_ids"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.dialogs.is_file():
        print(f"error: dialogs file {args.dialogs} does not exist", file=sys.stderr)
        return 1
    try:
        encoder = ChatEncoder.from_path(args.tokenizer)
        with args.dialogs.open("rb") as lines:
            for record in render_lines(
                lines, encoder, for_generation=args.for_generation, source=str(args.dialogs)
            ):
                sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    except (FileNotFoundError, ValueError) as error:  # RenderError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
