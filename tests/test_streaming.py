"""Tests for bulkdelete.streaming: a stream's rows reach the event loop as they come."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bulkdelete.columns import Columns
from bulkdelete.errors import InputError
from bulkdelete.rows import Row, Source, Stream
from bulkdelete.streaming import Feed
from bulkdelete.uidset import UidSet


class _Pipe:
    """A real pipe: the test writes to it, a ``Stream`` reads it with ``os.read``."""

    def __init__(self) -> None:
        self.reading, self.writing = os.pipe()

    def write(self, text: str) -> None:
        os.write(self.writing, text.encode())

    def close(self) -> None:
        os.close(self.writing)
        self.writing = -1  # never closed twice: its number may belong to another file by then

    def stream(self) -> Stream:
        return Stream.from_fd(self.reading, columns=Columns())


@pytest.fixture
def pipe() -> Iterator[_Pipe]:
    made = _Pipe()
    yield made
    for fd in (made.writing, made.reading):  # the writer first: a reading thread sees the end
        if fd >= 0:
            os.close(fd)


async def _next(rows: AsyncIterator[Row]) -> Row:
    return await asyncio.wait_for(anext(rows), 5)


async def _take(rows: AsyncIterator[Row], taken: list[str | None]) -> None:
    async for row in rows:
        taken.append(row.uid)


async def test_rows_come_while_the_producer_is_silent_and_the_loop_runs(pipe: _Pipe) -> None:
    """The first rows arrive before the producer writes more; the loop never stops meanwhile."""
    pipe.write("alice\nbob\n")
    feed = Feed([pipe.stream()], Columns())
    rows = feed.rows()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    first = [(await _next(rows)).uid, (await _next(rows)).uid]
    waiting = asyncio.create_task(_next(rows))  # nothing written yet: it waits
    await asyncio.sleep(0.2)
    ticks_while_waiting = ticks
    pipe.write("carol\n")
    pipe.close()
    third = (await waiting).uid
    rest = [row async for row in rows]
    ticker.cancel()

    assert (first, third, rest) == (["alice", "bob"], "carol", [])
    assert ticks_while_waiting >= 5
    data = b"alice\nbob\ncarol\n"
    expected = {"name": "-", "rows": 3, "bytes": len(data), "complete": True}
    expected["sha256"] = hashlib.sha256(data).hexdigest()
    assert feed.read_records() == [expected]


async def test_the_reading_thread_stays_a_bounded_way_ahead() -> None:
    """A fast producer is never read more than two buffers ahead of a slow run."""
    produced = 0
    lead = 0
    consumed = 0

    def reader(size: int) -> bytes:
        nonlocal produced, lead
        produced += 1
        lead = max(lead, produced - consumed)
        return b"user\n" if produced <= 2000 else b""

    stream = Stream(reader, columns=Columns(no_header=True))
    feed = Feed([stream], Columns(), buffer_rows=8)
    async for _row in feed.rows():
        consumed += 1
        if consumed % 50 == 0:
            await asyncio.sleep(0.005)  # a run that is behind its input

    assert consumed == 2000
    assert lead <= 3 * 8  # the buffer, a batch being handed over, and a read in progress


async def test_an_input_error_comes_after_the_rows_before_it(pipe: _Pipe) -> None:
    """The rows read before a NUL byte are handed over, then the error; the stream is unfinished."""
    pipe.write("alice\nbob\nc\x00\ndave\n")
    pipe.close()
    feed = Feed([pipe.stream()], Columns())
    taken: list[str | None] = []
    with pytest.raises(InputError, match="NUL byte") as caught:
        await _take(feed.rows(), taken)

    assert (taken, caught.value.line) == (["alice", "bob"], 3)
    [record] = feed.read_records()
    assert (record["rows"], record["complete"]) == (2, False)


async def test_a_run_that_stops_early_leaves_the_stream_unfinished(pipe: _Pipe) -> None:
    """Breaking off (a stop, a fatal answer) marks the stream incomplete, its read bytes hashed."""
    pipe.write("alice\nbob\ncarol\n")
    feed = Feed([pipe.stream()], Columns())
    rows = feed.rows()
    await _next(rows)
    await rows.aclose()
    await asyncio.sleep(0)

    [record] = feed.read_records()
    size = record["bytes"]
    assert (record["rows"], record["complete"]) == (1, False)
    assert record["sha256"] == hashlib.sha256(b"alice\nbob\ncarol\n"[:size]).hexdigest()


async def test_duplicates_are_spotted_across_files_and_the_stream(
    pipe: _Pipe, tmp_path: Path
) -> None:
    """A UID in a file before the stream makes the stream's repeat a duplicate, and after it."""
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    before.write_text("alice\n", encoding="utf-8")
    after.write_text("BOB\ncarol\n", encoding="utf-8")
    pipe.write("Alice\nbob\n")
    pipe.close()
    feed = Feed([Source.file(before), pipe.stream(), Source.file(after)], Columns())

    rows = [(row.source.rsplit("/", 1)[-1], row.status) async for row in feed.rows()]

    assert rows == [
        ("before.txt:1", "valid"),
        ("-:1", "duplicate"),
        ("-:2", "valid"),
        ("after.txt:1", "duplicate"),
        ("after.txt:2", "valid"),
    ]


async def test_a_stream_never_reached_reports_nothing_taken(tmp_path: Path) -> None:
    """A run stopped in a file before stdin took none of its rows and did not finish it."""
    stream = Stream(lambda size: b"zed\n", columns=Columns())  # a producer that never ends
    first = tmp_path / "first.txt"
    first.write_text("alice\n", encoding="utf-8")
    feed = Feed([Source.file(first), stream], Columns())
    rows = feed.rows()
    await _next(rows)
    await rows.aclose()

    [record] = feed.read_records()
    assert (record["rows"], record["complete"]) == (0, False)


def test_a_descriptor_left_non_blocking_is_waited_on(pipe: _Pipe) -> None:
    """A producer's shell may leave stdin non-blocking: reads wait for data instead of failing."""
    os.set_blocking(pipe.reading, False)

    def write_later() -> None:
        pipe.write("alice\n")
        pipe.close()

    later = threading.Timer(0.2, write_later)
    later.start()
    stream = pipe.stream()
    later.join()

    assert [row.uid for row in stream.rows(UidSet())] == ["alice"]
