"""Tests for bulkdelete.rows: reading messy UID files into validated rows."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkdelete.columns import Columns, Layout, looks_like_a_header
from bulkdelete.errors import InputError
from bulkdelete.lines import MAX_LINE_BYTES
from bulkdelete.rows import (
    FileScan,
    InputSummary,
    Row,
    Source,
    Stream,
    read_rows,
    scan,
)
from bulkdelete.uidset import UidSet
from bulkdelete.validation import validate_uid

ALLOWED = "(letters, digits, - and _ only)"
TOO_LONG_LINE = "line too long (over 65536 bytes)"


def write(directory: Path, name: str, content: str | bytes) -> Source:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return Source.file(path)


def read(*sources: Source, column: str | None = None, no_header: bool = False) -> list[Row]:
    return list(read_rows(sources, column=column, no_header=no_header))


def summary(rows: list[Row]) -> list[tuple[str, str, str | None, str | None, str]]:
    """Rows as tuples, the directory dropped from their source so expectations stay short."""
    return [(Path(r.source).name, r.raw, r.uid, r.reason, r.status) for r in rows]


# --- validate_uid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        ("Alice-1", "alice-1"),
        ("  BOB_2\t", "bob_2"),
        ("-abc", "-abc"),
        ("_", "_"),
        ("a" * 100, "a" * 100),
    ],
)
def test_validate_uid_accepts_and_normalises(value: str, expected: str) -> None:
    """Valid UIDs are trimmed of ASCII whitespace and lowercased; a leading '-' is allowed."""
    assert (expected, None) == validate_uid(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("  \t ", "empty"),
        ("a" * 101, "too long (101 characters, max 100)"),
        ('=HYPERLINK("http://evil","x")', "looks like a spreadsheet formula"),
        ("+1", "looks like a spreadsheet formula"),
        ("@x", "looks like a spreadsheet formula"),
        ("\t=1+1", "looks like a spreadsheet formula"),
        ("../x", "path separator or traversal"),
        ("a/b", "path separator or traversal"),
        ("a\\b", "path separator or traversal"),
        ("..", "path separator or traversal"),
        ("a..b", "path separator or traversal"),
        ("%2F", "percent-encoding"),
        ("a%20b", "percent-encoding"),
        ("?x=1", "query or fragment character"),
        ("#x", "query or fragment character"),
        ("a&b", "query or fragment character"),
        ("a b", "whitespace inside"),
        ("a\tb", "whitespace inside"),
        ("a\u00a0b", "whitespace inside"),
        ("a\rb", "control character U+000D"),
        ("a\nb", "control character U+000A"),
        ("a\x07b", "control character U+0007"),
        ("a\x7fb", "control character U+007F"),
        ("\u0430dmin", "non-ASCII character U+0430 (look-alike of 'a')"),
        ("\uff41dmin", "non-ASCII character U+FF41 (look-alike of 'a')"),
        ("caf\u00e9", "non-ASCII character U+00E9 (look-alike of 'e')"),
        ("a\u2013b", "non-ASCII character U+2013 (look-alike of '-')"),
        ("a\u200bb", "non-ASCII character U+200B"),
        ("a.b", f"character '.' not allowed {ALLOWED}"),
        ("a,b", f"character ',' not allowed {ALLOWED}"),
        ("a'b", f'character "\'" not allowed {ALLOWED}'),
    ],
)
def test_validate_uid_gives_specific_reason(value: str, reason: str) -> None:
    """Each kind of bad value gets its own reason, checked in order of usefulness."""
    assert (None, reason) == validate_uid(value)


def test_validate_uid_reason_never_echoes_huge_input() -> None:
    """A reason stays short however long or strange the value is."""
    for value in ("x" * 10_000, "a b" * 30, "\u0430" * 90, "." * 99):
        _, reason = validate_uid(value)
        assert reason is not None
        assert len(reason) < 80


@given(st.text())
def test_validate_uid_property_any_text(value: str) -> None:
    """For any text, validate_uid gives a well-formed normalised UID or a non-empty reason."""
    uid, reason = validate_uid(value)
    if uid is None:
        assert reason
    else:
        assert reason is None
        assert re.fullmatch(r"[a-z0-9_-]{1,100}", uid)


# --- line handling --------------------------------------------------------------------------


def test_plain_text_lf(tmp_path: Path) -> None:
    """A text file holds one UID per LF-terminated line; the last line may lack its newline."""
    source = write(tmp_path, "a.txt", "alice\nbob\ncarol")
    expected = [
        Row(f"{source.name}:1", "alice", "alice", None),
        Row(f"{source.name}:2", "bob", "bob", None),
        Row(f"{source.name}:3", "carol", "carol", None),
    ]
    assert expected == read(source)


def test_crlf_terminators_are_stripped(tmp_path: Path) -> None:
    """CRLF line endings are removed before the value is recorded."""
    source = write(tmp_path, "a.csv", "uid,name\r\nAlice,A\r\nbob,B\r\n")
    expected = [
        ("a.csv:2", "Alice", "alice", None, "valid"),
        ("a.csv:3", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(source))


def test_bom_is_dropped(tmp_path: Path) -> None:
    """A UTF-8 BOM at the file start is part of neither the first value nor the header."""
    text = write(tmp_path, "a.txt", b"\xef\xbb\xbfalice\n")
    csv_file = write(tmp_path, "b.csv", b"\xef\xbb\xbfname,UID\r\nx,bob\r\n")
    expected = [
        ("a.txt:1", "alice", "alice", None, "valid"),
        ("b.csv:2", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(text, csv_file))


def test_blank_lines_are_skipped_and_numbers_kept(tmp_path: Path) -> None:
    """Empty and whitespace-only lines yield no row; the others keep their physical line number."""
    text = write(tmp_path, "a.txt", "\n  \nalice\n\t\n\nbob\n\n")
    csv_file = write(tmp_path, "b.csv", "\nuid,x\n\n   \ncarol,1\n")
    expected = ["a.txt:3", "a.txt:6", "b.csv:5"]
    assert expected == [line for line, *_ in summary(read(text, csv_file))]


def test_trimming_keeps_raw_and_normalises_uid(tmp_path: Path) -> None:
    """Values are trimmed for the UID, while raw keeps what the input said."""
    text = write(tmp_path, "a.txt", "  alice \t\n")
    csv_file = write(tmp_path, "b.csv", 'uid,x\n" Bob ",1\n')
    expected = [
        ("a.txt:1", "  alice \t", "alice", None, "valid"),
        ("b.csv:2", " Bob ", "bob", None, "valid"),
    ]
    assert expected == summary(read(text, csv_file))


def test_uids_are_lowercased(tmp_path: Path) -> None:
    """The normalised UID is the lowercase of the trimmed value."""
    source = write(tmp_path, "a.txt", "Alice-1\nBOB_X\n")
    expected = ["alice-1", "bob_x"]
    assert expected == [r.uid for r in read(source)]


def test_lone_cr_in_text_file_is_a_control_character(tmp_path: Path) -> None:
    """A CR that does not end a line stays in the value and makes it invalid."""
    source = write(tmp_path, "a.txt", "a\rb\nc\n")
    expected = [
        ("a.txt:1", "a\rb", None, "control character U+000D", "invalid"),
        ("a.txt:2", "c", "c", None, "valid"),
    ]
    assert expected == summary(read(source))


def test_lone_cr_in_csv_is_a_malformed_record(tmp_path: Path) -> None:
    """csv refuses a bare CR in an unquoted field: that record is invalid and reading goes on."""
    source = write(tmp_path, "a.csv", "uid,x\na\rb,1\nc,2\n")
    reason = "malformed CSV (new-line character seen in unquoted field"
    rows = summary(read(source))
    expected = [("a.csv:2", "a\rb,1", None, True, "invalid"), ("a.csv:3", "c", "c", False, "valid")]
    assert expected == [
        (n, raw, uid, (why or "").startswith(reason), st) for n, raw, uid, why, st in rows
    ]


def test_text_after_a_closing_quote_is_malformed_not_merged(tmp_path: Path) -> None:
    """`"ab"c` is refused as malformed CSV, never read as the other user `abc`."""
    source = write(tmp_path, "a.csv", 'uid,email\n"ab"c,x\nok3,z\n')
    rows = summary(read(source))
    expected = [("a.csv:2", True, None, "invalid"), ("a.csv:3", False, "ok3", "valid")]
    assert expected == [
        (n, (why or "").startswith("malformed CSV"), uid, st) for n, _raw, uid, why, st in rows
    ]


# --- CSV and headers ------------------------------------------------------------------------


def test_quoted_comma_is_one_value(tmp_path: Path) -> None:
    """A quoted field with a comma is one value, then refused because ',' is not a UID character."""
    source = write(tmp_path, "a.csv", 'uid,name\n"a,b",x\n')
    expected = [("a.csv:2", "a,b", None, f"character ',' not allowed {ALLOWED}", "invalid")]
    assert expected == summary(read(source))


def test_header_uid_column_in_any_case_is_chosen(tmp_path: Path) -> None:
    """With a header and no --column, the field named uid (any case, trimmed) is read."""
    source = write(tmp_path, "a.csv", "name, UID \nAlice A,alice\n")
    expected = [("a.csv:2", "alice", "alice", None, "valid")]
    assert expected == summary(read(source))


@pytest.mark.parametrize(
    "content",
    ["ticket_id,user_id,requested_at\n1001,alice,x\n", "id,user_id,email\n1001,alice,a@b\n"],
)
def test_a_header_without_uid_is_refused_never_its_first_column_read(
    tmp_path: Path, content: str
) -> None:
    """Several columns, none named uid, no --column: refused naming the columns and --column."""
    source = write(tmp_path, "a.csv", content)
    header = content.split("\n", 1)[0].split(",")
    for attempt in (lambda: scan([source], column=None), lambda: read(source)):
        with pytest.raises(InputError) as caught:
            attempt()
        message = str(caught.value)
        assert (caught.value.line, "--column" in message) == (1, True)
        assert all(repr(name) in message for name in header)


def test_column_option_reads_the_named_column_of_a_header_without_uid(tmp_path: Path) -> None:
    """--column user_id reads that column; the manifest's layout names it."""
    source = write(tmp_path, "a.csv", "id,user_id,email\n1001,alice,a@b\n1002,Bob,b@c\n")
    expected = [
        ("a.csv:2", "alice", "alice", None, "valid"),
        ("a.csv:3", "Bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(source, column="user_id"))
    layout = Layout(("id", "user_id", "email"), 1, 1)
    assert layout == scan([source], column="user_id").files[0].layout


@pytest.mark.parametrize(
    "first",
    ["user_id", "UserID", "User ID", "userId", "member-uid", "id", "UID", "E-mail", "username"],
)
def test_a_first_value_that_reads_like_a_column_name_is_refused(tmp_path: Path, first: str) -> None:
    """One column headed user_id (and the like) is refused, never sent: both flags are named."""
    for name, line in [("a.txt", first), ("b.csv", f'"{first}"')]:
        source = write(tmp_path, name, f"{line}\nalice\nbob\n")
        if first.lower() == "uid":  # the one header name that settles it by itself
            assert [r.uid for r in read(source)] == ["alice", "bob"]
            continue
        with pytest.raises(InputError) as caught:
            scan([source], column=None)
        message = str(caught.value)
        assert ("--column" in message, "--no-header" in message, caught.value.line) == (
            True,
            True,
            1,
        )


def test_the_flags_settle_an_ambiguous_first_value(tmp_path: Path) -> None:
    """--column user_id makes it the header; --no-header makes it the first UID."""
    source = write(tmp_path, "a.txt", "user_id\nalice\n")
    as_header = [("a.txt:2", "alice", "alice", None, "valid")]
    as_uid = [("a.txt:1", "user_id", "user_id", None, "valid"), *as_header]
    assert (as_header, as_uid) == (
        summary(read(source, column="USER_ID")),
        summary(read(source, no_header=True)),
    )
    expected = (Layout(("user_id",), 0, 1), Layout())
    assert expected == (
        scan([source], column="user_id").files[0].layout,
        scan([source], column=None, no_header=True).files[0].layout,
    )


@pytest.mark.parametrize(
    "value", ["alice", "user-000", "migrated_00001", "david", "sid", "DAVID", "ovid-1", "a1_id"]
)
def test_ordinary_uids_do_not_read_like_column_names(value: str) -> None:
    """Names with digits, or words that merely end in "id", are data, not headers."""
    assert not looks_like_a_header(value)


def test_no_header_cannot_apply_to_a_csv_with_several_columns(tmp_path: Path) -> None:
    """--no-header on a multi-column CSV would leave the column to a guess: refused."""
    source = write(tmp_path, "a.csv", "alice,a@b\nbob,b@c\n")
    with pytest.raises(InputError, match="--no-header cannot apply"):
        scan([source], column=None, no_header=True)


def test_a_malformed_first_record_is_refused(tmp_path: Path) -> None:
    """The first record decides the layout: a malformed one cannot, so the file is refused."""
    source = write(tmp_path, "a.csv", '"ab"c,x\nuid,y\nalice,z\n')
    with pytest.raises(InputError, match="first record is malformed CSV") as caught:
        scan([source], column=None)
    assert caught.value.line == 1


def test_column_option_picks_named_field(tmp_path: Path) -> None:
    """--column matches a header field case-insensitively, trimmed, even over a uid field."""
    source = write(tmp_path, "a.csv", "id,Login,uid\n1,alice,x\n")
    expected = [("a.csv:2", "alice", "alice", None, "valid")]
    assert expected == summary(read(source, column=" login "))


def test_column_option_missing_from_header_is_refused(tmp_path: Path) -> None:
    """A --column the header lacks raises InputError naming the file, line, column and header."""
    source = write(tmp_path, "a.csv", "\nid,name\n1,alice\n")
    with pytest.raises(InputError) as caught:
        scan([source], column="login")
    expected = (
        source.name,
        2,
        f"{source.name}:2: has no column 'login'; the header has 'id', 'name'",
    )
    assert expected == (caught.value.source, caught.value.line, str(caught.value))


def test_column_option_without_header_is_refused(tmp_path: Path) -> None:
    """--column with a headerless (or empty) file raises InputError: nothing to match it against."""
    for name, content in [("a.txt", "alice\n"), ("b.csv", '"alice"\n'), ("c.txt", "")]:
        source = write(tmp_path, name, content)
        with pytest.raises(InputError, match="has no header row, so --column uid cannot be found"):
            scan([source], column="uid")


def test_headerless_single_column_csv(tmp_path: Path) -> None:
    """A one-field CSV whose first record is not 'uid' has no header: every record is data."""
    source = write(tmp_path, "a.csv", '"alice"\n"bob"\n')
    expected = [
        ("a.csv:1", "alice", "alice", None, "valid"),
        ("a.csv:2", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(source))


def test_single_field_uid_header_in_csv_and_text(tmp_path: Path) -> None:
    """A first record or line equal to 'uid' (any case) is a header, also for --column uid."""
    csv_file = write(tmp_path, "a.csv", '"UID"\n"alice"\n')
    text = write(tmp_path, "b.txt", " Uid \nbob\n")
    expected = [
        ("a.csv:2", "alice", "alice", None, "valid"),
        ("b.txt:2", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(csv_file, text, column="uid"))


def test_text_header_refuses_other_column(tmp_path: Path) -> None:
    """A text file's uid header cannot satisfy a --column of another name."""
    source = write(tmp_path, "a.txt", "uid\nalice\n")
    with pytest.raises(InputError, match="has no column 'email'; the header has 'uid'"):
        scan([source], column="email")


def test_record_without_chosen_column_is_invalid(tmp_path: Path) -> None:
    """A record too short to hold the chosen column is an invalid row naming that column."""
    source = write(tmp_path, "a.csv", "name,UID\nx\ny,bob\n")
    expected = [
        ("a.csv:2", "x", None, "missing column UID", "invalid"),
        ("a.csv:3", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(source))


def test_quoted_field_over_lines_reports_its_first_line(tmp_path: Path) -> None:
    """A record spanning lines is sourced at its first physical line, and its newline is kept."""
    source = write(tmp_path, "a.csv", 'uid,x\n"ali\nce",1\nbob,2\n')
    expected = [
        ("a.csv:2", "ali\nce", None, "control character U+000A", "invalid"),
        ("a.csv:4", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(source))


def test_files_are_judged_independently(tmp_path: Path) -> None:
    """Each file decides CSV or text and its own header."""
    first = write(tmp_path, "a.csv", "email,uid\nx@y,alice\n")
    second = write(tmp_path, "b.txt", "bob\n")
    expected = [
        ("a.csv:2", "alice", "alice", None, "valid"),
        ("b.txt:1", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(first, second))


# --- duplicates -----------------------------------------------------------------------------


def test_duplicates_across_files_and_case(tmp_path: Path) -> None:
    """A valid UID seen before, in any case and any file, is a duplicate; invalid rows never are."""
    first = write(tmp_path, "a.txt", "alice\nALICE\nbad one\nbad one\n")
    second = write(tmp_path, "b.csv", "uid,x\n Alice ,1\nbob,2\n")
    expected = [
        ("a.txt:1", "alice", "alice", None, "valid"),
        ("a.txt:2", "ALICE", "alice", None, "duplicate"),
        ("a.txt:3", "bad one", None, "whitespace inside", "invalid"),
        ("a.txt:4", "bad one", None, "whitespace inside", "invalid"),
        ("b.csv:2", " Alice ", "alice", None, "duplicate"),
        ("b.csv:3", "bob", "bob", None, "valid"),
    ]
    assert expected == summary(read(first, second))


def test_row_status() -> None:
    """status reads valid, invalid or duplicate off the row."""
    rows = [
        Row("-:1", "a", "a", None),
        Row("-:2", "a b", None, "whitespace inside"),
        Row("-:3", "A", "a", None, duplicate=True),
    ]
    expected = ["valid", "invalid", "duplicate"]
    assert expected == [r.status for r in rows]


# --- over-long lines ------------------------------------------------------------------------


def test_multi_megabyte_line_is_one_invalid_row(tmp_path: Path) -> None:
    """A line over MAX_LINE_BYTES becomes one invalid row with a preview; later rows are read."""
    content = b"alice\n" + b"x" * 3_000_000 + b"\nbob\n"
    for name, header in [("a.txt", b""), ("b.csv", b"uid,n\n")]:
        source = write(tmp_path, name, header + content)
        first = header.count(b"\n") + 1
        expected = [
            Row(f"{source.name}:{first}", "alice", "alice", None),
            Row(f"{source.name}:{first + 1}", "x" * 200 + "…", None, TOO_LONG_LINE),
            Row(f"{source.name}:{first + 2}", "bob", "bob", None),
        ]
        assert expected == read(source)
        assert len(expected) == scan([source], column=None).rows


def test_line_length_limit_boundary(tmp_path: Path) -> None:
    """A line of exactly MAX_LINE_BYTES, even with CRLF, is a value; one byte more is too long."""
    fits = b"a" * MAX_LINE_BYTES + b"\r\n"
    source = write(tmp_path, "a.txt", fits + b"b" * (MAX_LINE_BYTES + 1) + b"\n")
    expected = ["too long (65536 characters, max 100)", TOO_LONG_LINE]
    assert expected == [r.reason for r in read(source)]


def test_long_line_is_never_held_whole(tmp_path: Path) -> None:
    """Reading an 8 MB line allocates far less memory than the line itself."""
    source = write(tmp_path, "a.txt", b"y" * 8_000_000 + b"\nbob\n")
    tracemalloc.start()
    try:
        scan([source], column=None)
        rows = read(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = ["invalid", "valid"]
    assert expected == [r.status for r in rows]
    assert peak < 1_000_000


# --- refused input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"alice\nbo\x00b\n", 2, "contains a NUL byte; is this a binary or UTF-16 file?"),
        (b"\xff\xfea\x00\n", 1, "contains a NUL byte"),
        (b"alice\nbob\ncaf\xe9\n", 3, r"invalid UTF-8 \(byte 0xe9\)"),
        (b"a\n" + b"x" * 200_000 + b"\xc3\n", 2, "invalid UTF-8"),
        (b"a\n" + b"x" * 200_000 + b"\x00\n", 2, "NUL byte"),
        (b"a\nb\xe2\x82", 2, "invalid UTF-8"),
    ],
)
def test_binary_or_misencoded_input_is_refused(
    tmp_path: Path, content: bytes, line: int, message: str
) -> None:
    """scan and read_rows raise InputError naming file and line for NUL bytes and invalid UTF-8."""
    source = write(tmp_path, "a.txt", content)
    for attempt in (lambda: scan([source], column=None), lambda: read(source)):
        with pytest.raises(InputError, match=message) as caught:
            attempt()
        assert (source.name, line) == (caught.value.source, caught.value.line)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    """A missing file or a directory raises InputError naming it, without a line."""
    for source in (Source.file(tmp_path / "missing.csv"), Source.file(tmp_path)):
        with pytest.raises(InputError, match="cannot read") as caught:
            scan([source], column=None)
        assert (source.name, None) == (caught.value.source, caught.value.line)


# --- scan and stdin -------------------------------------------------------------------------


def test_scan_counts_rows_and_hashes_files(tmp_path: Path) -> None:
    """scan counts the rows read_rows yields (not headers or blanks), hashes and lays out files."""
    first_bytes = b"\xef\xbb\xbfuid,x\r\nalice,1\r\n\r\nbad one,2\r\nALICE,3\r\n"
    second_bytes = b"bob\n\n\ncarol"
    first = write(tmp_path, "a.csv", first_bytes)
    second = write(tmp_path, "b.txt", second_bytes)
    expected = InputSummary(
        files=(
            FileScan(
                first.name,
                3,
                hashlib.sha256(first_bytes).hexdigest(),
                len(first_bytes),
                Layout(("uid", "x"), 0, 1),
            ),
            FileScan(second.name, 2, hashlib.sha256(second_bytes).hexdigest(), len(second_bytes)),
        ),
        rows=5,
    )
    assert expected == scan([first, second], column=None)
    assert expected.rows == len(read(first, second))


def test_scan_of_empty_file(tmp_path: Path) -> None:
    """An empty file has no rows and the SHA-256 of nothing."""
    source = write(tmp_path, "a.txt", b"")
    expected = InputSummary((FileScan(source.name, 0, hashlib.sha256(b"").hexdigest(), 0),), 0)
    assert expected == scan([source], column=None)


def _trickle(data: bytes, size: int = 3) -> Callable[[int], bytes]:
    """Return a raw read that hands out at most ``size`` bytes at a time, as a pipe may."""
    stream = io.BytesIO(data)
    return lambda limit: stream.read(min(limit, size))


def test_a_stream_is_read_once_as_it_comes(tmp_path: Path) -> None:
    """A stream yields the rows a file would, and says how much it read and its SHA-256."""
    data = b"\xef\xbb\xbfuid\r\nAlice\n\nbob\nALICE\n"
    stream = Stream(_trickle(data), columns=Columns())
    expected = [
        Row("-:2", "Alice", "alice", None),
        Row("-:4", "bob", "bob", None),
        Row("-:5", "ALICE", "alice", None, duplicate=True),
    ]
    file_rows = read(write(tmp_path, "in.txt", data))
    assert expected == list(stream.rows(UidSet()))
    assert [(Path(r.source).name.split(":")[1], r.uid) for r in file_rows] == [
        (r.source.split(":")[1], r.uid) for r in expected
    ]
    assert (len(data), hashlib.sha256(data).hexdigest()) == stream.read_so_far()
    assert (Layout(("uid",), 0, 1), False) == (stream.layout, stream.empty)


def test_opening_a_stream_reads_only_up_to_its_first_row() -> None:
    """Opening judges the header from the first record and waits for one row, no more."""
    reads: list[int] = []
    data = io.BytesIO(b"uid\nalice\nbob\n")

    def read_lines(limit: int) -> bytes:
        line = data.readline()  # a pipe whose producer writes one line at a time
        reads.append(len(line))
        return line[:limit]

    stream = Stream(read_lines, columns=Columns())
    assert (reads, stream.read_so_far()[0]) == ([4, 6], 10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"user_id\nalice\n", "reads like a column name"),
        (b"a,b\nx,y\n", "none is named uid"),
        (b"al\x00ice\n", "NUL byte"),
    ],
)
def test_a_stream_refuses_its_first_record_before_any_row(data: bytes, message: str) -> None:
    """An ambiguous or missing column, or bad bytes, in the first record: refused on opening."""
    with pytest.raises(InputError, match=message) as caught:
        Stream(_trickle(data), columns=Columns())
    assert (caught.value.source, caught.value.line) == ("-", 1)


def test_a_stream_without_rows_is_empty() -> None:
    """Blank lines or a lone header hold no row: the stream says so before it is read."""
    for data in (b"", b"\n  \n", b"uid\n\n"):
        assert Stream(_trickle(data), columns=Columns()).empty


def test_a_stream_problem_found_later_is_raised_where_it_is_met() -> None:
    """Rows before a NUL byte come first; the error names the stream and its line."""
    stream = Stream(_trickle(b"alice\nbob\nc\x00arol\n"), columns=Columns())
    rows = stream.rows(UidSet())
    assert [next(rows).uid, next(rows).uid] == ["alice", "bob"]
    with pytest.raises(InputError, match="NUL byte") as caught:
        next(rows)
    assert (caught.value.source, caught.value.line) == ("-", 3)


def test_read_so_far_can_be_asked_while_another_thread_reads() -> None:
    """The size and hash are asked from another thread: they always agree with each other."""
    data = b"".join(f"user-{n}\n".encode() for n in range(20_000))
    stream = Stream(_trickle(data, 100), columns=Columns())
    reader = threading.Thread(target=lambda: sum(1 for _ in stream.rows(UidSet())))
    reader.start()
    seen = []
    while reader.is_alive():
        seen.append(stream.read_so_far())
    reader.join()
    seen.append(stream.read_so_far())
    assert all(
        sha == hashlib.sha256(data[:size]).hexdigest()
        for size, sha in seen[:: len(seen) // 20 or 1]
    )
    assert seen[-1] == (len(data), hashlib.sha256(data).hexdigest())


# --- properties -----------------------------------------------------------------------------

valid_uids = st.from_regex(r"[A-Za-z0-9_-]{1,100}", fullmatch=True)


@given(uid=valid_uids, csv_mode=st.booleans(), crlf=st.booleans())
def test_valid_uid_round_trips_through_a_file(
    tmp_path_factory: pytest.TempPathFactory, uid: str, csv_mode: bool, crlf: bool
) -> None:
    """Any valid UID written into a CSV or text file comes back as the same normalised UID."""
    newline = "\r\n" if crlf else "\n"
    content = f"uid,note{newline}{uid},1{newline}" if csv_mode else f"uid{newline}{uid}{newline}"
    source = write(tmp_path_factory.mktemp("roundtrip"), "in", content)
    expected = [(uid.lower(), "valid")]
    assert expected == [(r.uid, r.status) for r in read(source)]


@given(st.text(alphabet=st.sampled_from('aU,"\r\n \t-.é'), max_size=60))
def test_scan_count_matches_read_rows(
    tmp_path_factory: pytest.TempPathFactory, content: str
) -> None:
    """For any small messy file, scan counts exactly the rows read_rows and a stream yield.

    Or all three refuse it with the same message (a header that names no uid column, say).
    """
    source = write(tmp_path_factory.mktemp("count"), "in", content)
    data = source.path.read_bytes()

    def outcome(count: Callable[[], int]) -> int | str:
        try:
            return count()
        except InputError as exc:
            return str(exc).split(": ", 1)[1]

    def streamed() -> int:
        return len(list(Stream(_trickle(data), columns=Columns()).rows(UidSet())))

    expected = outcome(lambda: scan([source], column=None).rows)
    assert (expected, expected) == (outcome(lambda: len(read(source))), outcome(streamed))
