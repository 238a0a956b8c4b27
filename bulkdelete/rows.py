"""Read inputs into validated, normalised rows: files read twice, stdin once as it comes.

Files are read twice, in binary. ``scan`` reads each file start to end first and refuses the
whole input (NUL byte, invalid UTF-8, unreadable file, a header that does not say which column
holds the UIDs) before anything is sent; it also counts rows, hashes each file and notes its
layout. Then ``read_rows`` streams the same bytes again as ``Row`` values.

Stdin is a ``Stream``: read once, as it comes, never copied to disk, so a run can start before
its producer ends and can follow a producer that never ends. The rules for a stream:

- Before anything is sent, only its first record is read (up to its first row): its layout is
  judged by the same rules as a file's, and an ambiguous header, a NUL byte or invalid UTF-8
  there is refused with exit 2, nothing sent. A stream without any row is refused like an
  empty file.
- Its SHA-256, size and rows are known only where reading stopped. The run's manifest marks it
  ``streamed``; the run records its ``input_read`` line (rows taken, bytes read, their SHA-256,
  and whether the stream was read to its end) before ``run_finished``.
- A NUL byte or invalid UTF-8 found later cannot be refused before sending any more: the run
  stops there (code ``INPUT_ERROR``, an ``input_stopped`` line, exit 3): nothing more is sent,
  requests in flight finish and are audited.
- ``--max-deletes N`` cannot be checked first either: it is a cap on the valid UIDs read,
  skipped ones included. At the first valid UID beyond it the run stops reading (code
  ``MAX_DELETES``, an ``input_stopped`` line, exit 3): the N before it are still sent, it and
  the rest of the stream are not, and the rest is not read.
- ``--resume`` recognises a streamed row an earlier run settled by its UID (valid rows, as for
  files) or, for an invalid or duplicate row, by its line, value and status, since the hash
  that identifies a file is known only at the stream's end.

Physical lines come from ``lines``: bounded (a line too long becomes one invalid row), strictly
decoded as UTF-8, LF or CRLF. Blank lines yield no row.

An input is CSV when its first non-blank line contains ``,`` or starts with ``"``; otherwise it
holds one value per line. Which column holds the UIDs, and whether the first record is a
header, is decided by ``columns.choose_layout``: never by guessing. Each input is judged on
its own; duplicates are tracked across all inputs of one call.
"""

from __future__ import annotations

import csv
import itertools
import os
import select
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Literal

from bulkdelete.columns import WHITESPACE, Columns, Layout, choose_layout
from bulkdelete.errors import InputError
from bulkdelete.lines import (
    TOO_LONG,
    HashingReader,
    Line,
    RawLines,
    physical_lines,
    snippet,
)
from bulkdelete.uidset import UidSet
from bulkdelete.validation import validate_uid

STDIN: Final = "-"  # the name of stdin, as an input and in every row's source

# (line number, raw value, reason known before validation, the row's reference or None)
_Entry = tuple[int, str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: the file to read and the name rows and errors call it by."""

    path: Path
    name: str

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> Source:
        """Name a file by the path as the user gave it."""
        return cls(Path(path), os.fspath(path))


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the input, valid or not, with where it came from."""

    source: str
    raw: str
    uid: str | None
    reason: str | None
    duplicate: bool = False
    ref: str | None = None  # the value of --ref-column on this row ("" when empty); or None

    @property
    def status(self) -> Literal["valid", "invalid", "duplicate"]:
        """Say whether the row is to be sent, was refused, or repeats an earlier UID."""
        if self.uid is None:
            return "invalid"
        return "duplicate" if self.duplicate else "valid"


@dataclass(frozen=True, slots=True)
class FileScan:
    """What ``scan`` learned about one file: its rows, a fingerprint of its bytes, its layout."""

    name: str
    rows: int
    sha256: str
    byte_size: int
    layout: Layout = field(default_factory=Layout)


@dataclass(frozen=True, slots=True)
class InputSummary:
    """The result of ``scan``: every file, and the data rows of all of them."""

    files: tuple[FileScan, ...]
    rows: int


def scan(
    sources: Sequence[Source],
    *,
    column: str | None,
    no_header: bool = False,
    ref_column: str | None = None,
) -> InputSummary:
    """Read every file once, start to end, and refuse the whole input before anything is sent.

    Raises ``InputError`` naming the file (and line) for a NUL byte, invalid UTF-8, an
    unreadable file, or a first record that does not say which column holds the UIDs (see
    ``columns``). Counts the rows ``read_rows`` will yield (invalid ones included), hashes each
    file's bytes as they stream past and notes its layout.
    """
    columns = Columns(column, no_header, ref_column)
    files = []
    for source in sources:
        with _opened(source) as stream:
            hashing = HashingReader(stream)
            reader = _Reader(hashing.readline, source.name, columns)
            rows = sum(1 for _ in reader.entries())
        files.append(
            FileScan(source.name, rows, hashing.sha256.hexdigest(), hashing.size, reader.layout)
        )
    return InputSummary(tuple(files), sum(f.rows for f in files))


def read_rows(
    sources: Sequence[Source | Stream],
    *,
    column: str | None,
    no_header: bool = False,
    ref_column: str | None = None,
) -> Iterator[Row]:
    """Stream the rows of every input, in order, marking repeats of a UID as duplicates.

    Files are meant to have been accepted by ``scan`` first; raises ``InputError`` as ``scan``
    does (for a stream, where its problem is found). A ``Stream`` judged its layout when it was
    opened; ``column`` and ``no_header`` apply to the files.
    """
    seen = UidSet()
    columns = Columns(column, no_header, ref_column)
    for source in sources:
        yield from rows_of(source, seen, columns)


def rows_of(source: Source | Stream, seen: UidSet, columns: Columns) -> Iterator[Row]:
    """Stream the rows of one input; ``seen`` holds the UIDs met so far and is updated."""
    if isinstance(source, Stream):
        yield from source.rows(seen)
        return
    with _opened(source) as stream:
        yield from _rows(
            _Reader(stream.readline, source.name, columns).entries(), source.name, seen
        )


def make_row(source: str, raw: str, seen: UidSet, ref: str | None = None) -> Row:
    """Validate one value into a ``Row``; ``seen`` holds the UIDs met so far and is updated."""
    uid, reason = validate_uid(raw)
    if uid is None:
        return Row(source, raw, None, reason, ref=ref)
    if not seen.add(uid):
        return Row(source, raw, uid, None, duplicate=True, ref=ref)
    return Row(source, raw, uid, None, ref=ref)


def _rows(entries: Iterator[_Entry], name: str, seen: UidSet) -> Iterator[Row]:
    for number, raw, known, ref in entries:
        where = f"{name}:{number}"
        if known is not None:
            yield Row(where, raw, None, known, ref=ref)
        else:
            yield make_row(where, raw, seen, ref)


class Stream:
    """An input read once, as it comes (stdin): never stored, never read twice.

    ``read(n)`` returns what is available, up to ``n`` bytes, blocking only while nothing is,
    and ``b""`` at the end (``os.read`` on a pipe). Creating a ``Stream`` reads up to its first
    row, so its layout is judged, and a NUL byte, invalid UTF-8 or an ambiguous header there
    refused (``InputError``), before anything is sent. ``rows`` then yields its rows once,
    raising ``InputError`` where a later problem is found. ``read_so_far`` may be called from
    another thread than the one reading.
    """

    def __init__(
        self, read: Callable[[int], bytes], *, columns: Columns, name: str = STDIN
    ) -> None:
        self.name = name
        self._lines = RawLines(read)
        self._reader = _Reader(self._lines.readline, name, columns)
        self.layout = self._reader.layout
        self.empty = not self._reader.peeked

    @classmethod
    def from_fd(cls, fd: int, *, columns: Columns) -> Stream:
        """Open the stream of a file descriptor (stdin's is 0) as the input named ``-``."""

        def read(size: int) -> bytes:
            while True:
                try:
                    return os.read(fd, size)
                except BlockingIOError:  # a descriptor another process left non-blocking
                    select.select([fd], [], [])

        return cls(read, columns=columns)

    def rows(self, seen: UidSet) -> Iterator[Row]:
        """Yield the stream's rows as they come; ``seen`` holds the UIDs met so far."""
        yield from _rows(self._reader.entries(), self.name, seen)

    def read_so_far(self) -> tuple[int, str]:
        """Return how many bytes were read from the stream so far, and their SHA-256."""
        return self._lines.position()


@contextmanager
def _opened(source: Source) -> Iterator[BinaryIO]:
    try:
        with source.path.open("rb") as stream:
            yield stream
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", source=source.name) from err


class _Reader:
    """One input's entries, its layout judged from its first record when the reader is made.

    Making it reads up to the first entry (or the end), so the layout of a stream is known, or
    refused, before any of its rows is taken.
    """

    def __init__(self, readline: Callable[[int], bytes], name: str, columns: Columns) -> None:
        self._name = name
        self._columns = columns
        self._judged: Layout | None = None
        self._entries = self._read(readline)
        self.peeked: list[_Entry] = []
        while self._judged is None and (entry := next(self._entries, None)) is not None:
            self.peeked.append(entry)
        self.layout = self._judged or choose_layout(None, columns, source=name, line=None)

    def entries(self) -> Iterator[_Entry]:
        """Yield every entry: the ones read while judging the layout, then the rest."""
        peeked, self.peeked = self.peeked, []
        yield from peeked
        yield from self._entries

    def _judge(self, fields: list[str], line: int) -> Layout:
        self._judged = choose_layout(fields, self._columns, source=self._name, line=line)
        return self._judged

    def _read(self, readline: Callable[[int], bytes]) -> Iterator[_Entry]:
        lines = physical_lines(readline, self._name)
        for number, text, too_long in lines:
            if too_long:
                yield number, text, TOO_LONG, None
            elif text.strip(WHITESPACE):
                break
        else:
            return
        if "," in text or text.startswith('"'):
            yield from self._csv(itertools.chain([(number, text, False)], lines), number)
            return
        if self._judge([text], number).header is None:
            yield number, text, None, None
        for number, text, too_long in lines:
            if too_long:
                yield number, text, TOO_LONG, None
            elif text.strip(WHITESPACE):
                yield number, text, None, None

    def _csv(self, lines: Iterator[Line], first_number: int) -> Iterator[_Entry]:
        feed = _CsvFeed(lines)
        # strict: a quote inside an unquoted field, or text after a closing quote, is a malformed
        # row, never silently merged into another UID (`"ab"c` would otherwise be sent as `abc`).
        reader = csv.reader(feed, strict=True)
        offset = first_number - 1  # csv counts lines from the first non-blank one
        layout = self._judged
        while True:
            start = offset + reader.line_num + 1
            try:
                record = next(reader, None)
            except csv.Error as err:
                # csv has dropped the broken record and resumes at the next line.
                yield from feed.drain_too_long()
                if layout is None:  # no header to judge the layout by: a guess would follow
                    message = f"the first record is malformed CSV ({err}): fix it to go on"
                    raise InputError(message, source=self._name, line=start) from None
                yield offset + reader.line_num, snippet(feed.last), f"malformed CSV ({err})", None
                continue
            yield from feed.drain_too_long()
            if record is None:
                return
            if not record:
                continue
            if layout is None:
                layout = self._judge(record, start)
                if layout.header is not None:
                    continue
            ref = _ref(record, layout)
            if layout.index < len(record):
                yield start, record[layout.index], None, ref
            else:
                yield start, snippet(",".join(record)), f"missing column {layout.column}", ref


class _CsvFeed:
    """Hand physical lines to csv.reader, keeping over-long lines out of its sight."""

    def __init__(self, lines: Iterator[Line]) -> None:
        self._lines = lines
        self._too_long: list[tuple[int, str]] = []
        self.last = ""

    def __iter__(self) -> _CsvFeed:
        return self

    def __next__(self) -> str:
        number, text, too_long = next(self._lines)
        self.last = text
        if too_long:
            self._too_long.append((number, text))
            return "\n"
        # A whitespace-only line would be a record with one blank field; an empty line is none.
        # The newline must be kept, or csv would join the lines of a quoted field.
        return text + "\n" if text.strip(WHITESPACE) else "\n"

    def drain_too_long(self) -> Iterator[_Entry]:
        for number, preview in self._too_long:
            yield number, preview, TOO_LONG, None  # no field of it was read: nor its reference
        self._too_long.clear()


def _ref(record: list[str], layout: Layout) -> str | None:
    """Return a record's reference, trimmed; "" when its field is empty or missing, None when
    no --ref-column is read."""
    if layout.ref_index is None:
        return None
    return record[layout.ref_index].strip(WHITESPACE) if layout.ref_index < len(record) else ""
