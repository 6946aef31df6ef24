"""How readers report bad records: raise for malformed input, count and log data-quality skips.

A conversion function turns one raw record into an internal form. It raises ``MalformedRecord`` when
the record does not have the shape its format requires (missing keys, wrong types): that is a wrong
file or a wrong format choice, so reading always stops, naming the file and line. It raises
``SkipRecord`` for a well-formed record whose content cannot be used (empty answer, identical answers,
special tags...): those are counted in a ``SkipReport`` and logged, or raised in strict mode.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from chat.readers.sources import Location

logger = logging.getLogger("chat.readers")

MAX_EXAMPLES = 3  # locations kept per skip reason: enough to find the records, small enough to log

T = TypeVar("T")


class DatasetError(ValueError):
    """A data file that cannot be read as asked; the message names the file:line and the problem."""


class MalformedRecord(Exception):
    """Raised by conversion functions; the reading loop adds the location and re-raises a DatasetError."""


class SkipRecord(Exception):
    """A usable-shaped record with unusable content, skipped under ``reason`` (a short snake_case tag)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class SkipReport:
    """How many records a reader kept, and how many it skipped for each reason, with a few examples."""

    kept: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # reason -> [(location, detail)]

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    @property
    def seen(self) -> int:
        return self.kept + self.skipped

    def add(self, reason: str, location: Location | str, detail: str = "") -> None:
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append((str(location), detail))

    def summary(self) -> str:
        """One line: kept count, then each skip reason with its count."""
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.counts.items()))
        return f"kept {self.kept} of {self.seen} records" + (f"; skipped {reasons}" if reasons else "")

    def log(self, log: logging.Logger, name: str) -> None:
        """One warning line per skip reason, with its count and the first example locations."""
        for reason, count in sorted(self.counts.items()):
            where = "; ".join(
                f"{location} ({detail})" if detail else location for location, detail in self.examples[reason]
            )
            log.warning("%s: skipped %d of %d records: %s, e.g. %s", name, count, self.seen, reason, where)


def convert_records(
    records: Iterable[tuple[Location, dict]],
    convert: Callable[[dict, Location], T],
    *,
    name: str,
    strict: bool = False,
) -> tuple[list[T], SkipReport]:
    """Apply ``convert`` to every record; count skips (or raise the first one when ``strict``) and log them.

    Raises DatasetError when the source holds no records, or when every record was skipped: an empty
    result is almost always a wrong path or a wrong format, and would otherwise surface much later.
    """
    converted: list[T] = []
    report = SkipReport()
    for location, record in records:
        try:
            item = convert(record, location)
        except MalformedRecord as error:
            raise DatasetError(f"{location}: {error}") from None
        except SkipRecord as skip:
            if strict:
                raise DatasetError(f"{location}: {skip} (strict mode: bad records are errors)") from None
            report.add(skip.reason, location, skip.detail)
            continue
        converted.append(item)
        report.kept += 1
    if report.seen == 0:
        raise DatasetError(f"{name}: no records found")
    report.log(logger, name)
    if report.kept == 0:
        raise DatasetError(
            f"{name}: every record was skipped ({report.summary()}); wrong format or wrong file?"
        )
    return converted, report
