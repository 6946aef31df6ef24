"""Samples on disk as they are made: append-only jsonl, one record per prompt, durable after every batch.

A run killed mid-write leaves at most one half-written last line; `recover_samples` drops it (and cuts it
off the file, so the next append starts on a fresh line) and returns every whole record, so a restart
skips the prompts already sampled. A bad line anywhere else is corruption and raises naming file:line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def append_samples(path: Path, records: list[dict]) -> None:
    """Append records as jsonl lines and fsync, so they survive a kill or a power cut once this returns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def recover_samples(path: Path) -> list[dict]:
    """Every whole record of the file (none if it does not exist), cutting off a half-written last line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete_end = data.rfind(b"\n") + 1  # bytes after the last newline were never finished
    if complete_end < len(data):
        log.warning(
            "%s: dropping a half-written last line (%d bytes) left by an interrupted run",
            path,
            len(data) - complete_end,
        )
        with path.open("r+b") as f:
            f.truncate(complete_end)
    return parse_lines(data[:complete_end].decode("utf-8"), path)


def parse_lines(text: str, path: Path) -> list[dict]:
    records = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_no}: invalid json in the samples file: {error.msg}") from error
        if not isinstance(record, dict) or "key" not in record:
            raise ValueError(f"{path}:{line_no}: a sample record must be an object with a 'key'")
        records.append(record)
    return records


def read_samples(path: Path) -> list[dict]:
    """A finished stage's samples file, read only (a missing file raises naming it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no samples file (did that rejection-sampling iteration finish?)")
    return parse_lines(path.read_text(encoding="utf-8"), path)


def write_samples(path: Path, records: list[dict]) -> None:
    """Write a whole samples file atomically (a reader sees the old file or the new one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)
