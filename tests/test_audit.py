"""The audit journal: the single writer, torn-tail repair, the reader, and record shapes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import time
from pathlib import Path

import orjson
import pytest

from bulkdelete.audit import AuditWriter, last_line, read_records, repair_torn_tail
from bulkdelete.errors import AuditError
from bulkdelete.records import Location, Sending, encode, timestamp

KIB = 1024


def lines_of(path: Path) -> list[dict[str, object]]:
    """Decode every line of a file (each must end with a newline), without its chain link."""
    data = path.read_bytes()
    assert data.endswith(b"\n") or not data
    records = [orjson.loads(line) for line in data.splitlines()]
    return [{k: v for k, v in record.items() if k != "prev"} for record in records]


def links_of(path: Path) -> list[object]:
    """Return the ``prev`` link each line of a file carries."""
    return [orjson.loads(line)["prev"] for line in path.read_bytes().splitlines()]


def sha256_links(path: Path, key: bytes | None = None) -> list[str | None]:
    """Compute what each line's link must be: None, then a digest of the line before it."""
    lines = path.read_bytes().splitlines()

    def digest(line: bytes) -> str:
        if key is None:
            return hashlib.sha256(line).hexdigest()
        return hmac.new(key, line, hashlib.sha256).hexdigest()

    return [None, *(digest(line) for line in lines[:-1])]


# --- AuditWriter ------------------------------------------------------------------------------


async def test_writer_writes_records_in_order_one_line_each(tmp_path: Path) -> None:
    """Every record becomes exactly one line, in the order written."""
    path = tmp_path / "audit.jsonl"
    records = [{"n": n, "uid": f"user-{n}", "text": "line\nbreak"} for n in range(100)]
    async with AuditWriter(path) as writer:
        for record in records:
            writer.write(record)
    expected = (records, 100)
    assert expected == (lines_of(path), writer.lines_written)


async def test_writer_creates_missing_parent_directories(tmp_path: Path) -> None:
    """The audit's directory is created when it does not exist yet."""
    path = tmp_path / "a" / "b" / "audit.jsonl"
    async with AuditWriter(path) as writer:
        writer.write({"n": 1})
    expected = [{"n": 1}]
    assert expected == lines_of(path)


async def test_writer_fsyncs_everything_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At close every line is on disk before the final fsync (so it survives power loss)."""
    path = tmp_path / "audit.jsonl"
    at_fsync: list[bytes] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        at_fsync.append(path.read_bytes())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    async with AuditWriter(path) as writer:
        for n in range(10):
            writer.write({"n": n})
    assert at_fsync, "close() did not fsync"
    final = path.read_bytes()
    expected = (final, 10)
    assert expected == (at_fsync[-1], len(final.splitlines()))


async def test_writer_appends_to_an_existing_audit(tmp_path: Path) -> None:
    """A second writer on the same file appends after what is there."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as first:
        first.write({"run": 1})
    async with AuditWriter(path) as second:
        second.write({"run": 2})
    expected = [{"run": 1}, {"run": 2}]
    assert expected == lines_of(path)


async def test_writer_repairs_a_torn_tail_before_appending(tmp_path: Path) -> None:
    """A fragment left by a kill is cut off, so the next record is intact and not glued to it."""
    path = tmp_path / "audit.jsonl"
    fragment = b'{"uid": "torn", "outc'
    path.write_bytes(b'{"uid": "whole"}\n' + fragment)
    async with AuditWriter(path) as writer:
        writer.write({"uid": "next"})
    expected = ([{"uid": "whole"}, {"uid": "next"}], len(fragment))
    assert expected == (lines_of(path), writer.repaired_bytes)


async def test_record_is_encoded_when_written(tmp_path: Path) -> None:
    """Changing a record after write() does not change the line it became."""
    path = tmp_path / "audit.jsonl"
    record: dict[str, object] = {"uid": "alice", "outcome": "deleted"}
    async with AuditWriter(path) as writer:
        writer.write(record)
        record["outcome"] = "failed"
        record["extra"] = True
    expected = [{"uid": "alice", "outcome": "deleted"}]
    assert expected == lines_of(path)


async def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    """Records from many concurrent tasks each land whole, each task's in its own order."""
    path = tmp_path / "audit.jsonl"
    tasks, per_task = 20, 50
    padding = "x" * 2000  # long lines, so a split write would show

    async with AuditWriter(path) as writer:

        async def worker(task: int) -> None:
            for n in range(per_task):
                writer.write({"task": task, "n": n, "pad": padding})
                await asyncio.sleep(0)

        await asyncio.gather(*(worker(task) for task in range(tasks)))

    records = lines_of(path)
    assert tasks * per_task == len(records)
    for task in range(tasks):
        assert list(range(per_task)) == [r["n"] for r in records if r["task"] == task]
    assert all(padding == r["pad"] for r in records)


async def test_each_line_links_to_the_line_before(tmp_path: Path) -> None:
    """The first line's prev is null; every other line's is the SHA-256 of the line before."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as writer:
        for n in range(4):
            writer.write({"n": n})
    expected = sha256_links(path)
    assert expected == links_of(path)


async def test_chain_continues_across_runs_and_repairs(tmp_path: Path) -> None:
    """A later writer links its first line to the last whole line, even after a torn tail."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as first:
        first.write({"run": 1})
        first.write({"run": 1, "n": 2})
    with path.open("ab") as handle:
        handle.write(b'{"run": 1, "n": 3, "to')  # a kill mid-line
    async with AuditWriter(path) as second:
        second.write({"run": 2})
    expected = sha256_links(path)
    assert expected == links_of(path)


async def test_chain_with_a_key_uses_hmac(tmp_path: Path) -> None:
    """With a chain key every link is an HMAC-SHA256 of the line before, under that key."""
    path = tmp_path / "audit.jsonl"
    key = b"audit-chain-key"
    async with AuditWriter(path, chain_key=key) as writer:
        for n in range(3):
            writer.write({"n": n})
    expected = sha256_links(path, key)
    assert expected == links_of(path)
    assert sha256_links(path) != links_of(path)  # not a plain hash


async def test_write_through_returns_once_the_line_is_in_the_file(tmp_path: Path) -> None:
    """After write_through returns, its line (and every earlier one) is in the file already."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as writer:
        writer.write({"n": 1})
        writer.write_through({"n": 2})
        on_disk = lines_of(path)
    expected = [{"n": 1}, {"n": 2}]
    assert expected == on_disk


async def test_writer_refuses_an_unopenable_path(tmp_path: Path) -> None:
    """An audit path that cannot be opened for appending raises AuditError naming it."""
    with pytest.raises(AuditError) as raised:
        async with AuditWriter(tmp_path):  # a directory
            pass
    assert str(tmp_path) == raised.value.path


async def test_a_second_writer_of_the_same_audit_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    """Only one writer may hold an audit: a second fails at once, a later one gets it."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as first:
        first.write_through({"n": 1})
        with pytest.raises(AuditError, match="another bulkdelete run is writing this audit"):
            async with AuditWriter(path):
                pass
        first.write_through({"n": 2})
    async with AuditWriter(path) as later:
        later.write({"n": 3})
    assert [record["n"] for record in lines_of(path)] == [1, 2, 3]


# /dev/full accepts opens and fails every write with ENOSPC: a full disk, on Linux.
FULL_DISK = Path("/dev/full")


async def test_write_through_fails_at_once_when_the_disk_is_full() -> None:
    """When the audit cannot be written, write_through raises AuditError (no request leaves)."""
    writer = AuditWriter(FULL_DISK)
    await writer.__aenter__()
    try:
        with pytest.raises(AuditError):
            writer.write_through({"n": 1})
        with pytest.raises(AuditError):  # and so does every later write
            writer.write({"n": 2})
    finally:
        with contextlib.suppress(OSError, AuditError):
            await writer.close()


async def test_a_failed_append_is_reported_as_audit_error() -> None:
    """A disk error while appending surfaces as AuditError (exit 2), not as a bare OSError."""
    with pytest.raises(AuditError) as raised:
        async with AuditWriter(FULL_DISK) as writer:
            writer.write({"n": 1})
    expected = str(FULL_DISK)
    assert expected == raised.value.path


# --- repair_torn_tail -------------------------------------------------------------------------


def test_repair_cuts_an_unterminated_last_line(tmp_path: Path) -> None:
    """The bytes after the last newline are removed and their count returned."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    removed = repair_torn_tail(path)
    expected = (len(b'{"c":'), b'{"a":1}\n{"b":2}\n')
    assert expected == (removed, path.read_bytes())


def test_repair_leaves_a_terminated_file_alone(tmp_path: Path) -> None:
    """A file ending in a newline is not touched."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n')
    removed = repair_torn_tail(path)
    expected = (0, b'{"a":1}\n{"b":2}\n')
    assert expected == (removed, path.read_bytes())


@pytest.mark.parametrize("size", [1, 100, 200 * KIB])
def test_repair_empties_a_file_with_no_newline(tmp_path: Path, size: int) -> None:
    """A file that is one unterminated line becomes empty."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"x" * size)
    removed = repair_torn_tail(path)
    expected = (size, b"")
    assert expected == (removed, path.read_bytes())


def test_repair_of_an_empty_or_missing_file_does_nothing(tmp_path: Path) -> None:
    """An empty file stays empty and a missing file is not created."""
    empty, missing = tmp_path / "empty.jsonl", tmp_path / "missing.jsonl"
    empty.write_bytes(b"")
    removed = (repair_torn_tail(empty), repair_torn_tail(missing))
    expected = ((0, 0), b"", False)
    assert expected == (removed, empty.read_bytes(), missing.exists())


@pytest.mark.parametrize(
    "torn",
    [64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 128 * KIB, 128 * KIB + 7],
    ids=["64k-1", "64k", "64k+1", "128k", "128k+7"],
)
def test_repair_finds_the_newline_across_read_chunks(tmp_path: Path, torn: int) -> None:
    """A torn line longer than one read chunk (64 KiB) is still cut back to the last newline."""
    path = tmp_path / "audit.jsonl"
    whole = b'{"a":1}\n' + b'{"b":"' + b"y" * (70 * KIB) + b'"}\n'
    path.write_bytes(whole + b"z" * torn)
    removed = repair_torn_tail(path)
    expected = (torn, whole)
    assert expected == (removed, path.read_bytes())


# --- last_line ---------------------------------------------------------------------------------


def test_last_line_of_a_missing_or_empty_file_is_none(tmp_path: Path) -> None:
    """There is no last line in a file that does not exist or is empty."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    expected = (None, None)
    assert expected == (last_line(tmp_path / "missing.jsonl"), last_line(empty))


@pytest.mark.parametrize(
    "size",
    [1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 200 * KIB],
    ids=["1", "64k-1", "64k", "64k+1", "200k"],
)
def test_last_line_is_found_whatever_its_length(tmp_path: Path, size: int) -> None:
    """The last line comes back whole, without its newline, however many read chunks it spans."""
    path = tmp_path / "audit.jsonl"
    last = b"L" * size
    path.write_bytes(b"first\n" + b"middle\n" + last + b"\n")
    expected = last
    assert expected == last_line(path)


def test_last_line_of_a_one_line_file(tmp_path: Path) -> None:
    """A file of one line returns that line."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"a":1}\n')
    expected = b'{"a":1}'
    assert expected == last_line(path)


# --- read_records -----------------------------------------------------------------------------


def _sending(uid: str) -> Sending:
    return Sending(ts=T, run_id="r", normalised_uid=uid, source=Location("users.csv", 2))


T = "2026-11-28T09:00:00.000Z"
A, B, C = (encode(_sending(uid)) for uid in "abc")


def test_read_records_numbers_lines_and_skips_a_torn_tail(tmp_path: Path) -> None:
    """Complete lines are yielded with 1-based numbers; an unterminated last line is skipped."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(A + b"\n" + B + b"\n" + C)
    expected = [(1, _sending("a")), (2, _sending("b"))]
    assert expected == list(read_records(path))


def test_read_records_fails_on_a_malformed_complete_line(tmp_path: Path) -> None:
    """A complete line that is not JSON is corruption: AuditError names the file and line."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(A + b'\n{"b":\n' + C + b"\n")
    with pytest.raises(AuditError) as raised:
        list(read_records(path))
    expected = (str(path), 2, True)
    assert expected == (raised.value.path, raised.value.line, f"{path}:2" in str(raised.value))


@pytest.mark.parametrize("line", [b"[1, 2]", b'"text"', b"42", b"null", b""])
def test_read_records_fails_on_a_line_that_is_not_an_object(tmp_path: Path, line: bytes) -> None:
    """A complete line holding JSON that is not an object (or nothing) raises AuditError."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(A + b"\n" + B + b"\n" + line + b"\n")
    with pytest.raises(AuditError) as raised:
        list(read_records(path))
    expected = 3
    assert expected == raised.value.line


def test_read_records_of_a_missing_file_raises_audit_error(tmp_path: Path) -> None:
    """Reading an audit that does not exist raises AuditError, not OSError."""
    path = tmp_path / "missing.jsonl"
    with pytest.raises(AuditError) as raised:
        list(read_records(path))
    assert (str(path), None) == (raised.value.path, raised.value.line)


# --- timestamp and record shapes --------------------------------------------------------------

RFC3339_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    """timestamp() is YYYY-MM-DDTHH:MM:SS.mmmZ and lies between the times around the call."""
    before = time.time()
    stamp = timestamp()
    after = time.time()
    assert RFC3339_UTC_MS.fullmatch(stamp), stamp
    parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    assert int(before * 1000) / 1000 <= parsed <= after


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (1_700_000_000.125, "2023-11-14T22:13:20.125Z"),
        (1_700_000_000.0, "2023-11-14T22:13:20.000Z"),
        (0.5, "1970-01-01T00:00:00.500Z"),
    ],
)
def test_timestamp_of_known_instants(
    monkeypatch: pytest.MonkeyPatch, instant: float, expected: str
) -> None:
    """Known instants (exact in binary) render as the expected UTC text, milliseconds padded."""
    monkeypatch.setattr(time, "time", lambda: instant)
    assert expected == timestamp()
