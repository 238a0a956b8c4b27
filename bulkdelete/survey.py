"""A survey of the input before anything is sent: rows by status, invalid rows by reason and
by line, and each input's first values.

The rows are the ones a real run would read, so the counts are what it would do; the dry run
and the ``--permanent`` confirmation show them, with the first values of each input so a person
can see that the right column is read. The invalid
rows can be written out as a CSV (``--invalid-out``) for whoever fixes the input: its file, its
line, the value as the input gave it, and the reason it would not be sent. Such a file is
likely opened in a spreadsheet, and the values are hostile by definition (``=HYPERLINK(...)``
is one of the reasons), so a cell a spreadsheet would run as a formula is written with a
leading ``'``, as OWASP advises for CSV injection.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bulkdelete import privatefile
from bulkdelete.rows import Row

INVALID_CSV_HEADER: Final = ("file", "line", "value", "reason")
FIRST_VALUES: Final = 3  # values of each input shown before a real run, to check the column
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Survey:
    """What the survey found in the input."""

    rows: int
    valid: int
    invalid: int
    duplicate: int
    reasons: Mapping[str, int]  # invalid rows by reason, most frequent first
    first_values: Mapping[str, Sequence[str]]  # input name -> its first raw values


def survey(rows: Iterable[Row], *, invalid_out: Path | None = None) -> Survey:
    """Count ``rows`` by status and reason; write the invalid ones to ``invalid_out`` (0600).

    Raises ``OSError`` when ``invalid_out`` cannot be written.
    """
    if invalid_out is None:
        return _count(rows, on_invalid=None)
    with privatefile.open_text(invalid_out) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(INVALID_CSV_HEADER)

        def write(row: Row) -> None:
            name, _, line = row.source.rpartition(":")
            writer.writerow((_cell(name), line, _cell(row.raw), _cell(row.reason or "")))

        return _count(rows, on_invalid=write)


def _count(rows: Iterable[Row], *, on_invalid: Callable[[Row], None] | None) -> Survey:
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    first_values: dict[str, list[str]] = {}
    for row in rows:
        statuses[row.status] += 1
        values = first_values.setdefault(row.source.rpartition(":")[0], [])
        if len(values) < FIRST_VALUES:
            values.append(row.raw)
        if row.reason:
            reasons[row.reason] += 1
            if on_invalid is not None:
                on_invalid(row)
    return Survey(
        rows=statuses.total(),
        valid=statuses["valid"],
        invalid=statuses["invalid"],
        duplicate=statuses["duplicate"],
        reasons=dict(reasons.most_common()),
        first_values=first_values,
    )


def _cell(value: str) -> str:
    """Return ``value`` as a spreadsheet shows it, never as a formula it runs."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
