"""The pipeline's producer: rows in, valid UIDs out to the workers' queue.

Every row read is counted in the tally and goes one of four ways here: skipped (an earlier run
settled it), audited at once as invalid or duplicate (never sent), queued for a worker, or left
unsent because the run stopped sending. In a batched run each worker takes its batch from the
queue (``Batches``): what is queued, up to a batch, at once, so that a slow stream's rows are
sent as they come and a file's, read faster than calls go, fill every batch. Reading ends early
at the first valid UID beyond ``max_deletes`` (``MAX_DELETES``: the ones before it are still
sent) and at a stream found unreadable (``INPUT_ERROR``: the run halts at once); an
``input_stopped`` line says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Final, TypeVar

from bulkdelete.api import BULK_FRAME, MAX_BULK_BODY, bulk_cost
from bulkdelete.errors import InputError
from bulkdelete.outcome import Answer, Outcome, Result
from bulkdelete.records import InputStopped, Location
from bulkdelete.resume import Resume
from bulkdelete.rows import Row
from bulkdelete.send import Sender

INPUT_ERROR: Final = "INPUT_ERROR"  # the fatal code of a stream found unreadable mid-run
MAX_DELETES: Final = "MAX_DELETES"  # the fatal code of an input past --max-deletes valid UIDs
_YIELD_EVERY: Final = 256
_T = TypeVar("_T")
Rows = Iterable[Row] | AsyncIterable[Row]
Abort = Callable[[Answer, bool], None]  # (why, halt at once): how the run is told to end


class Intake:
    """Feed one run's workers; ``produce`` ends with one ``None`` per worker."""

    def __init__(
        self,
        sender: Sender,
        *,
        workers: int,
        resume: Resume | None,
        max_deletes: int | None,
        abort: Abort,
    ) -> None:
        self._sender = sender
        self._workers = workers
        self._resume = resume
        self._max_deletes = max_deletes
        self._abort = abort
        self._valid = 0  # valid, first-seen UIDs read, skipped ones included

    async def produce(self, rows: Rows, queue: asyncio.Queue[Row | None]) -> None:
        try:
            await self._read(rows, queue)
        except InputError as exc:  # a stream turned out unreadable: what was sent stays sent
            message = f"{exc}; the run stopped there: nothing more was sent"
            self._stop(INPUT_ERROR, Location(exc.source, exc.line), message, halt=True)
        for _ in range(self._workers):
            await queue.put(None)

    async def _read(self, rows: Rows, queue: asyncio.Queue[Row | None]) -> None:
        sender = self._sender
        tally, pacer, resume = sender.tally, sender.pacer, self._resume
        async for row in as_async(rows):
            tally.read += 1
            if pacer.halted:
                break  # this row was read and is not sent: it counts as unsent
            if self._past_max_deletes(row):
                # The UIDs within the cap, already queued, are still sent: exactly the first N.
                # This row was read and is not sent: it counts as unsent.
                self._stop(
                    MAX_DELETES,
                    Location.parse(row.source),
                    f"the input holds more than --max-deletes {self._max_deletes} valid UIDs: "
                    f"the first {self._max_deletes} were sent, {row.source} and the rest of the "
                    "input were not",
                    halt=False,
                )
                break
            if resume is not None and resume.settles(row):
                tally.skipped += 1
            elif row.uid is None:
                sender.record(row, Result(Outcome.INVALID), Location.parse(row.source))
            elif row.duplicate:
                sender.record(row, Result(Outcome.DUPLICATE), Location.parse(row.source))
            else:
                await queue.put(row)
            if tally.read % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let workers run even through a long run of bad rows
        else:
            tally.read_all = True

    def _past_max_deletes(self, row: Row) -> bool:
        """Count a valid row; tell whether it is one more than ``max_deletes`` allows.

        Rows an earlier run settled count too, so a resumed run stops where the first did.
        """
        if row.uid is None or row.duplicate:
            return False
        self._valid += 1
        return self._max_deletes is not None and self._valid > self._max_deletes

    def _stop(self, code: str, source: Location, message: str, *, halt: bool) -> None:
        """Stop reading the input: audit why; the run ends aborted, with ``halt`` at once."""
        sender = self._sender
        sender.audit.write(
            InputStopped(run_id=sender.run_id, code=code, source=source, message=message)
        )
        self._abort(Answer(None, code, message), halt)


class Batches:
    """One worker's batches from the queue: each up to ``size`` rows and a bulk body of at most
    ``api.MAX_BULK_BODY`` bytes; a row that would overflow it starts the next batch."""

    def __init__(self, queue: asyncio.Queue[Row | None], size: int) -> None:
        self._queue = queue
        self._size = size
        self._carried: Row | None = None
        self._ended = False  # this worker's end (a None) was taken while filling a batch

    async def next(self) -> list[Row] | None:
        """Wait for a row, then take what else is queued, up to a batch; None at the end."""
        first = self._carried
        self._carried = None
        if first is None and (self._ended or (first := await self._queue.get()) is None):
            return None
        batch, used = [first], BULK_FRAME + bulk_cost(first.uid or "")
        while len(batch) < self._size and not self._ended:
            try:
                row = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if row is None:
                self._ended = True
            elif used + (cost := bulk_cost(row.uid or "")) > MAX_BULK_BODY:
                self._carried = row
                break
            else:
                batch.append(row)
                used += cost
        return batch


async def as_async(items: Iterable[_T] | AsyncIterable[_T]) -> AsyncIterator[_T]:
    """Iterate a plain or an async iterable the same way."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
