"""Feed a run the rows of its inputs as they come: files from the event loop, stdin by a thread.

A file's rows are read in the event loop's thread: its bytes are on disk, so a read never waits
long. A ``Stream`` (stdin) can make a read wait for as long as its producer likes, which must
never stop the event loop, so its rows are read by a daemon thread and handed over through a
bounded buffer: memory stays bounded whatever the producer's pace, and the thread waits while
the run is behind. The thread reads the descriptor with ``os.read`` and holds no lock while it
waits, so a run that ends (or is stopped) while the producer is silent exits at once; the
thread goes with the process.

``Feed.read_records`` then says what was read of each stream, for the audit's ``input_read``
lines: rows taken by the run, bytes read and their SHA-256, and whether the stream was read to
its end.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any, Final

from bulkdelete.columns import Columns
from bulkdelete.rows import Row, Source, Stream, rows_of
from bulkdelete.uidset import UidSet

BUFFER_ROWS: Final = 1024  # rows a stream's thread may read ahead of the run
_END: Final = object()  # the thread's last word when the stream ended


class _Thread:
    """Read rows in a daemon thread; ``rows`` yields them in the event loop, in order."""

    def __init__(self, rows: Iterator[Row], capacity: int, give_up: asyncio.Event) -> None:
        self._source = rows
        self._give_up = give_up
        self._capacity = capacity
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._buffer: deque[Row] = deque()
        self._last: object | BaseException | None = None  # _END, or what the reading raised
        self._closed = False
        self._waiting = False
        self.ended = False  # every row was handed over and the stream is at its end
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="bulkdelete-stdin", daemon=True).start()

    def _read(self) -> None:
        last: object | BaseException = _END
        try:
            for row in self._source:
                with self._room:
                    while len(self._buffer) >= self._capacity and not self._closed:
                        self._room.wait()
                    if self._closed:
                        return
                    self._buffer.append(row)
                    self._wake()
        except BaseException as exc:  # noqa: BLE001  (handed to the loop, which raises it)
            last = exc
        with self._room:
            self._last = last
            self._wake()

    def _wake(self) -> None:
        """Wake the loop if it waits for rows; called with the lock held."""
        if self._waiting and not self._closed:
            self._waiting = False
            self._loop.call_soon_threadsafe(self._ready.set)

    async def rows(self) -> AsyncGenerator[Row, None]:
        try:
            while True:
                with self._room:
                    batch = list(self._buffer)
                    self._buffer.clear()
                    last = self._last
                    if not batch and last is None:
                        self._waiting = True
                        self._ready.clear()
                    self._room.notify()
                for row in batch:
                    yield row
                if batch:
                    continue
                if isinstance(last, BaseException):
                    raise last
                if last is _END:
                    self.ended = True
                    return
                if not await self._wait():
                    return
        finally:
            with self._room:
                self._closed = True
                self._room.notify()

    async def _wait(self) -> bool:
        """Wait for rows; return False when the run gave up on them first."""
        ready = asyncio.ensure_future(self._ready.wait())
        give_up = asyncio.ensure_future(self._give_up.wait())
        await asyncio.wait({ready, give_up}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        give_up.cancel()
        return not self._give_up.is_set()


class Feed:
    """The rows of a run's inputs, in order, with duplicates spotted across all of them."""

    def __init__(
        self,
        sources: Sequence[Source | Stream],
        columns: Columns,
        *,
        buffer_rows: int = BUFFER_ROWS,
    ) -> None:
        self._sources = sources
        self._columns = columns
        self._buffer_rows = buffer_rows
        self._taken: dict[str, int] = {}  # stream name -> rows the run took from it
        self._give_up = asyncio.Event()  # the run wants no more rows: stop waiting for any
        self._ended: set[str] = set()  # streams read to their end, every row taken

    async def rows(self) -> AsyncGenerator[Row, None]:
        """Yield every input's rows; a stream's come as its producer writes them."""
        seen = UidSet()
        for source in self._sources:
            if isinstance(source, Stream):
                self._taken[source.name] = 0
                reader = _Thread(source.rows(seen), self._buffer_rows, self._give_up)
                async for row in reader.rows():
                    self._taken[source.name] += 1
                    yield row
                if not reader.ended:  # the run gave up waiting: it reads nothing more
                    return
                self._ended.add(source.name)
            else:
                for row in rows_of(source, seen, self._columns):
                    yield row

    def stop_waiting(self) -> None:
        """Stop waiting for a stream's next rows: the run will send nothing more."""
        self._give_up.set()

    def read_records(self) -> list[dict[str, Any]]:
        """Return, for each stream, what the run read of it: the fields of ``input_read``."""
        records = []
        for source in self._sources:
            if isinstance(source, Stream):
                size, sha256 = source.read_so_far()
                records.append(
                    {
                        "name": source.name,
                        "rows": self._taken.get(source.name, 0),
                        "bytes": size,
                        "sha256": sha256,
                        "complete": source.name in self._ended,
                    }
                )
        return records
