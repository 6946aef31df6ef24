"""Where records come from: local jsonl / json / parquet files (gzip too), directories of them, or hub names.

Every record comes with a ``Location`` so that any error or skip can name the file and line it came from.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chat.readers.skips import DatasetError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
JSON_SUFFIXES = (".json", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
DATA_SUFFIXES = JSONL_SUFFIXES + JSON_SUFFIXES + PARQUET_SUFFIXES

# "name" or "owner/name" as on the Hugging Face hub; anything else that does not exist locally is a
# mistyped path, and must not be sent to the network as a dataset name.
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")

Source = str | os.PathLike | Iterable[str | os.PathLike]


@dataclass(frozen=True)
class Location:
    """A record's place: 1-based line of a jsonl file, or 1-based row of a json array, parquet file or hub split."""

    source: str
    number: int
    unit: str = "line"

    def __str__(self) -> str:
        return (
            f"{self.source}:{self.number}"
            if self.unit == "line"
            else f"{self.source}:{self.unit} {self.number}"
        )


def open_source(source: Source, split: str | None = None) -> tuple[Iterator[tuple[Location, dict]], str]:
    """(every record with its location, a short name of the source for logs and errors).

    ``source`` is a path, a hub name, or several of them. ``split`` chooses files inside a directory
    (see ``split_name_matches``) and the split of a hub dataset; explicitly named files are read
    whatever their name. Files are opened lazily, as the records are consumed.
    """
    names = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not names:
        raise ValueError("no data source given: expected a path, a list of paths, or a hub dataset name")
    return iter_records(names, split), ", ".join(str(name) for name in names)


def iter_records(names: list[str | os.PathLike], split: str | None) -> Iterator[tuple[Location, dict]]:
    for item in resolve(names, split):
        if isinstance(item, Path):
            yield from read_file(item)
        else:
            yield from read_hub(item, split)


def resolve(names: list[str | os.PathLike], split: str | None) -> list[Path | str]:
    """The files (Paths) and hub dataset names (strs) that ``names`` stand for."""
    resolved: list[Path | str] = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_dir():
            resolved.extend(files_in_directory(path, split))
        elif path.is_file():
            if not has_data_suffix(path):
                raise DatasetError(
                    f"{path}: unsupported file type (expected one of {', '.join(DATA_SUFFIXES)})"
                )
            resolved.append(path)
        elif isinstance(name, str) and HUB_NAME.fullmatch(name) and not has_data_suffix(path):
            resolved.append(name)
        else:
            raise FileNotFoundError(f"data source {str(name)!r}: no such file or directory")
    return resolved


def has_data_suffix(path: Path) -> bool:
    return path.name.endswith(DATA_SUFFIXES)


def split_name_matches(path: Path, root: Path, split: str) -> bool:
    """True for the files of a split: named ``split.*`` or ``split-*`` (hub shards), or under a ``split`` folder."""
    stem = path.name.split(".")[0]
    return stem == split or stem.startswith(f"{split}-") or split in path.relative_to(root).parts[:-1]


def files_in_directory(directory: Path, split: str | None) -> list[Path]:
    """The data files under ``directory`` (recursively, sorted), only those of ``split`` when given."""
    files = sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and has_data_suffix(path) and not path.name.startswith(".")
    )
    if split is not None:
        files = [path for path in files if split_name_matches(path, directory, split)]
    if not files:
        wanted = f" for split {split!r}" if split is not None else ""
        raise DatasetError(f"{directory}: no data files{wanted} (looked for {', '.join(DATA_SUFFIXES)})")
    return files


def read_file(path: Path) -> Iterator[tuple[Location, dict]]:
    if path.name.endswith(JSONL_SUFFIXES):
        return read_jsonl(path)
    if path.name.endswith(JSON_SUFFIXES):
        return read_json(path)
    return read_parquet(path)


def open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def decode_json_line(raw: bytes, location: Location) -> object:
    # utf-8-sig drops a byte-order mark, which some editors write at the start of a file.
    try:
        return json.loads(raw.decode("utf-8-sig" if location.number == 1 else "utf-8"))
    except UnicodeDecodeError as error:
        raise DatasetError(f"{location}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{location}: malformed JSON: {error.msg} (column {error.colno})") from None


def as_record(value: object, location: Location) -> dict:
    if not isinstance(value, dict):
        raise DatasetError(f"{location}: expected a JSON object, got {type(value).__name__}")
    return value


def read_jsonl(path: Path) -> Iterator[tuple[Location, dict]]:
    try:
        with open_binary(path) as lines:
            for number, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue  # blank lines (a trailing one, mostly) hold no record
                location = Location(str(path), number)
                yield location, as_record(decode_json_line(raw, location), location)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: damaged gzip file: {error}") from None


def read_json(path: Path) -> Iterator[tuple[Location, dict]]:
    """A JSON array of records; JSON Lines saved with a .json name is read as jsonl (as `datasets` does)."""
    try:
        with open_binary(path) as file:
            text = file.read().decode("utf-8-sig")
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: damaged gzip file: {error}") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            yield from read_jsonl(path)
            return
        raise DatasetError(
            f"{path}:{error.lineno}: malformed JSON: {error.msg} (column {error.colno})"
        ) from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON array of records (or one JSON object per line)")
    for number, value in enumerate(data, 1):
        location = Location(str(path), number, "row")
        yield location, as_record(value, location)


def read_parquet(path: Path) -> Iterator[tuple[Location, dict]]:
    import pyarrow.parquet as parquet  # imported here: only parquet sources pay for it

    try:
        batches = parquet.ParquetFile(path).iter_batches()
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise DatasetError(f"{path}: cannot read as parquet: {error}") from error
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            yield Location(str(path), number, "row"), row


def load_hub_dataset(name: str, split: str):
    from datasets import load_dataset  # imported here: slow, and only hub sources need it

    return load_dataset(name, split=split)


def read_hub(name: str, split: str | None) -> Iterator[tuple[Location, dict]]:
    """The rows of a hub dataset split ("train" unless given); only reached for names that are not local paths."""
    split = split or "train"
    try:
        dataset = load_hub_dataset(name, split)
    except Exception as error:  # network, auth, missing split...: all mean the same to the caller
        raise DatasetError(
            f"{name!r} is not a local file or directory, and loading it as a hub dataset failed: {error}"
        ) from error
    for number, row in enumerate(dataset, 1):
        yield Location(f"{name}[{split}]", number, "row"), row
