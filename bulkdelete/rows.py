"""Stream input files into validated, normalised rows.

Reading model: every input is a file read in binary, twice. ``scan`` reads each source start to
end first and refuses the whole input (NUL byte, invalid UTF-8, unreadable file, a ``--column``
the header lacks) before anything is sent; it also counts rows and hashes each file. Then
``read_rows`` streams the same bytes again as ``Row`` values. Stdin cannot be read twice, so
``spool_stdin`` first copies it to a temporary file that goes by the name ``-``.

Physical lines come from a bounded ``readline``, so memory stays constant whatever the input:
a line longer than ``MAX_LINE_BYTES`` becomes one invalid row, and the rest of it is skipped in
bounded chunks (still checked for NUL bytes and UTF-8). Lines end in LF or CRLF, are decoded
strictly as UTF-8, and a BOM at the start of a file is dropped. Blank lines yield no row.

A file is CSV when its first non-blank line contains ``,`` or starts with ``"``; otherwise it
holds one UID per line. A CSV file's first record is a header when it has two or more fields or
is just ``uid``; a text file's first line is a header when it is ``uid``. Each file is judged
on its own; duplicates are tracked across all files of one call.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from bulkdelete.errors import InputError
from bulkdelete.uidset import UidSet

MAX_UID_LENGTH = 100
MAX_LINE_BYTES = 64 * 1024

_WHITESPACE = " \t\n\r\x0b\x0c"  # ASCII whitespace only: anything else is judged, not trimmed
_UID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_UID_LENGTH}}}", re.ASCII)
_LINE_READ = MAX_LINE_BYTES + 2  # room for CRLF, so a line of exactly MAX_LINE_BYTES fits
_CHUNK = 64 * 1024
_BOM = codecs.BOM_UTF8
_LF = ord("\n")
_TOO_LONG = f"line too long (over {MAX_LINE_BYTES} bytes)"
_SNIPPET = 200
_HEADER_PREVIEW = 10  # header fields quoted when --column is not among them
# Common homoglyphs that NFKD leaves alone; NFKD already maps fullwidth and accented letters.
_LOOKALIKES = str.maketrans(
    "аеорсхуіјѕԁԛԝАВЕНІЈКМОРСТХοΑΒΕΗΙΚΜΝΟΡΤΧΥΖ‐‑‒–—−",  # noqa: RUF001 homoglyphs on purpose
    "aeopcxyijsdqwABEHIJKMOPCTXoABEHIKMNOPTXYZ------",
)

_Line = tuple[int, str, bool]  # (physical line number, text or preview, too long)
_Entry = tuple[int, str, str | None]  # (line number, raw value, reason known before validation)


@dataclass(frozen=True, slots=True)
class Source:
    """One input: the file to read and the name rows and errors call it by (``-`` for stdin)."""

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

    @property
    def status(self) -> Literal["valid", "invalid", "duplicate"]:
        """Say whether the row is to be sent, was refused, or repeats an earlier UID."""
        if self.uid is None:
            return "invalid"
        return "duplicate" if self.duplicate else "valid"


@dataclass(frozen=True, slots=True)
class FileScan:
    """What ``scan`` learned about one file: its data rows and a fingerprint of its bytes."""

    name: str
    rows: int
    sha256: str
    byte_size: int


@dataclass(frozen=True, slots=True)
class InputSummary:
    """The result of ``scan``: every file, and the data rows of all of them."""

    files: tuple[FileScan, ...]
    rows: int


def validate_uid(value: str) -> tuple[str | None, str | None]:
    """Return ``(normalised uid, None)`` or ``(None, reason)``.

    The value is trimmed of ASCII whitespace and lowercased. Reasons never quote more than one
    character of the value, so they stay short whatever the input.
    """
    trimmed = value.strip(_WHITESPACE)
    if _UID.fullmatch(trimmed):
        return trimmed.lower(), None
    return None, _reason(trimmed)


def _reason(value: str) -> str:  # noqa: PLR0911 one return per reason, most useful first
    if not value:
        return "empty"
    if len(value) > MAX_UID_LENGTH:
        return f"too long ({len(value)} characters, max {MAX_UID_LENGTH})"
    # OWASP CSV injection; a leading tab or CR was already trimmed, and "-" starts valid UIDs.
    if value[0] in "=+@":
        return "looks like a spreadsheet formula"
    if "/" in value or "\\" in value or ".." in value:
        return "path separator or traversal"
    if "%" in value:
        return "percent-encoding"
    if any(c in "?#&" for c in value):
        return "query or fragment character"
    if any(c in " \t" or (c.isspace() and unicodedata.category(c) != "Cc") for c in value):
        return "whitespace inside"
    for c in value:
        if unicodedata.category(c) == "Cc":
            return f"control character U+{ord(c):04X}"
    for c in value:
        if not c.isascii():
            return _non_ascii(c)
    bad = next(c for c in value if not (c.isalnum() or c in "-_"))
    return f"character {bad!r} not allowed (letters, digits, - and _ only)"


def _non_ascii(c: str) -> str:
    twin = c.translate(_LOOKALIKES)
    if twin == c:
        twin = unicodedata.normalize("NFKD", c)[:1]
    if twin != c and twin.isascii() and twin.isprintable():
        return f"non-ASCII character U+{ord(c):04X} (look-alike of {twin!r})"
    return f"non-ASCII character U+{ord(c):04X}"


def scan(sources: Sequence[Source], *, column: str | None) -> InputSummary:
    """Read every source once, start to end, and refuse the whole input before anything is sent.

    Raises ``InputError`` naming the file (and line) for a NUL byte, invalid UTF-8, an
    unreadable file, or a ``column`` the header lacks. Counts the rows ``read_rows`` will yield
    (invalid ones included) and hashes each file's bytes as they stream past.
    """
    files = []
    for source in sources:
        with _opened(source) as stream:
            hashing = _HashingReader(stream)
            rows = sum(1 for _ in _entries(hashing.readline, source.name, column))
        files.append(FileScan(source.name, rows, hashing.sha256.hexdigest(), hashing.size))
    return InputSummary(tuple(files), sum(f.rows for f in files))


def read_rows(sources: Sequence[Source], *, column: str | None) -> Iterator[Row]:
    """Stream the rows of every source, in order, marking repeats of a UID as duplicates.

    Meant to run after ``scan`` accepted the same sources; raises ``InputError`` as ``scan`` does.
    """
    seen = UidSet()
    for source in sources:
        with _opened(source) as stream:
            for number, raw, known in _entries(stream.readline, source.name, column):
                where = f"{source.name}:{number}"
                if known is not None:
                    yield Row(where, raw, None, known)
                else:
                    yield make_row(where, raw, seen)


def make_row(source: str, raw: str, seen: UidSet) -> Row:
    """Validate one value into a ``Row``; ``seen`` holds the UIDs met so far and is updated."""
    uid, reason = validate_uid(raw)
    if uid is None:
        return Row(source, raw, None, reason)
    if not seen.add(uid):
        return Row(source, raw, uid, None, duplicate=True)
    return Row(source, raw, uid, None)


@contextmanager
def spool_stdin(stream: BinaryIO, directory: Path | None = None) -> Iterator[Source]:
    """Copy ``stream`` to a private temporary file and yield it as the source named ``-``.

    The copy is made in bounded chunks and deleted when the ``with`` block ends.
    """
    fd, name = tempfile.mkstemp(prefix="bulkdelete-stdin-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(stream, spool, _CHUNK)
        yield Source(Path(name), "-")
    finally:
        Path(name).unlink(missing_ok=True)


class _HashingReader:
    """Hash and count every byte a ``readline`` hands out."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readline(self, limit: int) -> bytes:
        data = self._stream.readline(limit)
        self.sha256.update(data)
        self.size += len(data)
        return data


@contextmanager
def _opened(source: Source) -> Iterator[BinaryIO]:
    try:
        with source.path.open("rb") as stream:
            yield stream
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", source=source.name) from err


def _entries(readline: Callable[[int], bytes], name: str, column: str | None) -> Iterator[_Entry]:
    lines = _lines(readline, name)
    for number, text, too_long in lines:
        if too_long:
            yield number, text, _TOO_LONG
        elif text.strip(_WHITESPACE):
            break
    else:
        _column_index(None, column, name, None)
        return
    rest = itertools.chain([(number, text, False)], lines)
    if "," in text or text.startswith('"'):
        yield from _csv_entries(rest, number, name, column)
        return
    header = text.strip(_WHITESPACE).lower() == "uid"
    _column_index([text] if header else None, column, name, number)
    if header:
        next(rest)
    for number, text, too_long in rest:
        if too_long:
            yield number, text, _TOO_LONG
        elif text.strip(_WHITESPACE):
            yield number, text, None


def _csv_entries(
    lines: Iterator[_Line], first_number: int, name: str, column: str | None
) -> Iterator[_Entry]:
    feed = _CsvFeed(lines)
    # strict: a quote inside an unquoted field, or text after a closing quote, is a malformed
    # row, never silently merged into another UID (`"ab"c` would otherwise be sent as `abc`).
    reader = csv.reader(feed, strict=True)
    offset = first_number - 1  # csv counts lines from the first non-blank one
    index: int | None = None
    label = ""
    while True:
        start = offset + reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as err:
            # csv has dropped the broken record and resumes at the next line.
            yield from feed.drain_too_long()
            yield offset + reader.line_num, _snippet(feed.last), f"malformed CSV ({err})"
            continue
        yield from feed.drain_too_long()
        if record is None:
            return
        if not record:
            continue
        if index is None:
            is_header = len(record) > 1 or record[0].strip(_WHITESPACE).lower() == "uid"
            index = _column_index(record if is_header else None, column, name, start)
            if is_header:
                label = record[index].strip(_WHITESPACE)
                continue
        if index < len(record):
            yield start, record[index], None
        else:
            yield start, _snippet(",".join(record)), f"missing column {label}"


class _CsvFeed:
    """Hand physical lines to csv.reader, keeping over-long lines out of its sight."""

    def __init__(self, lines: Iterator[_Line]) -> None:
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
        return text + "\n" if text.strip(_WHITESPACE) else "\n"

    def drain_too_long(self) -> Iterator[_Entry]:
        for number, preview in self._too_long:
            yield number, preview, _TOO_LONG
        self._too_long.clear()


def _column_index(header: list[str] | None, column: str | None, name: str, line: int | None) -> int:
    if header is None:
        if column is not None:
            message = f"has no header row, so --column {column} cannot be found"
            raise InputError(message, source=name, line=line)
        return 0
    names = [field.strip(_WHITESPACE).lower() for field in header]
    wanted = "uid" if column is None else column.strip(_WHITESPACE).lower()
    if wanted in names:
        return names.index(wanted)
    if column is None:
        return 0
    shown = header[:_HEADER_PREVIEW]
    found = ", ".join(repr(_snippet(field.strip(_WHITESPACE), 40)) for field in shown)
    more = f" and {len(header) - len(shown)} more" if len(header) > len(shown) else ""
    message = f"has no column {column!r}; the header has {found}{more}"
    raise InputError(message, source=name, line=line)


def _lines(readline: Callable[[int], bytes], name: str) -> Iterator[_Line]:
    number = 0
    size = _LINE_READ + len(_BOM)  # the first read also has room for a BOM
    while chunk := readline(size):
        number += 1
        if 0 in chunk:  # int membership is a memchr; b"\0" in chunk is several times slower
            raise _nul_error(name, number)
        newline = chunk[-1] == _LF
        ended = newline or len(chunk) < size
        if number == 1:
            size = _LINE_READ
            chunk = chunk.removeprefix(_BOM)
        if newline:
            chunk = chunk[:-2] if chunk[-2:] == b"\r\n" else chunk[:-1]
        if not ended or len(chunk) > MAX_LINE_BYTES:
            yield number, _skip_long_line(chunk, ended, readline, name, number), True
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as err:
            raise _utf8_error(err, name, number) from None
        yield number, text, False


def _skip_long_line(
    head: bytes, ended: bool, readline: Callable[[int], bytes], name: str, number: int
) -> str:
    """Return a preview of an over-long line, reading and checking the rest of it in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        preview = _snippet(decoder.decode(head, final=ended))
        while not ended:
            chunk = readline(_CHUNK)
            ended = chunk[-1:] == b"\n" or len(chunk) < _CHUNK
            if 0 in chunk:
                raise _nul_error(name, number)
            decoder.decode(chunk, final=ended)
    except UnicodeDecodeError as err:
        raise _utf8_error(err, name, number) from None
    return preview


def _nul_error(name: str, number: int) -> InputError:
    message = "contains a NUL byte; is this a binary or UTF-16 file? Save it as UTF-8"
    return InputError(message, source=name, line=number)


def _utf8_error(err: UnicodeDecodeError, name: str, number: int) -> InputError:
    message = f"invalid UTF-8 (byte 0x{err.object[err.start]:02x}); save the file as UTF-8"
    return InputError(message, source=name, line=number)


def _snippet(text: str, limit: int = _SNIPPET) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
