"""The audit journal: its single writer, its reader, and torn-tail repair.

The audit is JSONL, append-only, one line per input row plus run-level lines that carry an
``event`` field and no ``outcome``. Only ``AuditWriter`` writes it: workers hand it records and a
single task turns them into lines, so lines never interleave. Each batch goes to the kernel in
one ``os.write`` (it survives kill -9 from then on) and is fsynced on a timer and at close, in a
thread so the event loop never waits on the disk (that also covers power loss).

A kill can leave the last line cut short with no newline. Opening the file for append cuts such
a torn tail off first, so the next record is never glued to the fragment; readers skip an
unterminated last line and fail loudly on any other line that does not parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Self

import orjson

from bulkdelete.errors import AuditError
from bulkdelete.outcome import Result

Record = Mapping[str, Any]

_FSYNC_INTERVAL: Final = 1.0
_MAX_BATCH: Final = 512
_TAIL_CHUNK: Final = 64 * 1024


def repair_torn_tail(path: Path) -> int:
    """Cut an unterminated last line off ``path``; return how many bytes were removed."""
    try:
        handle = path.open("r+b")
    except FileNotFoundError:
        return 0
    with handle:
        size = handle.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            handle.truncate(keep)
            os.fsync(handle.fileno())
        return size - keep


def encode(record: Record) -> bytes:
    """Return one audit line (with its newline) for a record."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class AuditWriter:
    """The one writer of an audit file; use as an async context manager inside the run's loop.

    ``write`` never blocks and never fails for the caller; records reach the file in order.
    """

    def __init__(self, path: Path, *, fsync_interval: float = _FSYNC_INTERVAL) -> None:
        self.path = path
        self.repaired_bytes = 0
        self.lines_written = 0
        self._fsync_interval = fsync_interval
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._fd = -1
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.repaired_bytes = repair_torn_tail(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(
                f"cannot open the audit for appending: {exc.strerror}", path=str(self.path)
            ) from exc
        self._task = asyncio.create_task(self._drain(), name="audit-writer")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def write(self, record: Record) -> None:
        """Queue one record; it is encoded now so later changes to ``record`` cannot alter it."""
        self._queue.put_nowait(encode(record))

    async def close(self) -> None:
        """Write every queued record, fsync, and close the file."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.shield(self._task)
        finally:
            self._task = None
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1

    async def _drain(self) -> None:
        dirty = False
        last_sync = time.monotonic()
        while True:
            try:
                if dirty:
                    timeout = max(0.0, last_sync + self._fsync_interval - time.monotonic())
                    first = await asyncio.wait_for(self._queue.get(), timeout)
                else:
                    first = await self._queue.get()
            except TimeoutError:
                first = b""
            batch, done = self._take_batch(first)
            if batch:
                self._write_all(b"".join(batch))
                self.lines_written += len(batch)
                dirty = True
            if done:
                return
            if dirty and time.monotonic() - last_sync >= self._fsync_interval:
                await asyncio.to_thread(os.fsync, self._fd)
                last_sync = time.monotonic()
                dirty = False

    def _take_batch(self, first: bytes | None) -> tuple[list[bytes], bool]:
        if first is None:
            return [], True
        batch = [first] if first else []
        while len(batch) < _MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, record)`` for every complete line of an audit file.

    An unterminated last line (a torn tail from a kill) is skipped; any other line that is not a
    JSON object raises ``AuditError`` naming the line.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise AuditError(f"cannot read the audit: {exc.strerror}", path=str(path)) from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise AuditError(f"not a JSON line: {exc}", path=str(path), line=number) from exc
            if not isinstance(record, dict):
                raise AuditError("not a JSON object", path=str(path), line=number)
            yield number, record


def timestamp() -> str:
    """Return the current time as RFC 3339 UTC with milliseconds, as every audit line carries."""
    now = time.time()
    whole = time.gmtime(now)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', whole)}.{int(now % 1 * 1000):03d}Z"


def row_record(
    *,
    run_id: str,
    source: str,
    uid: str,
    normalised: str | None,
    permanent: bool,
    result: Result,
    reason: str | None = None,
) -> dict[str, Any]:
    """Return the audit record of one input row's final outcome."""
    return {
        "ts": timestamp(),
        "run_id": run_id,
        "uid": uid,
        "normalised_uid": normalised,
        "permanent": permanent,
        "outcome": result.outcome.value,
        "http_status": result.http_status,
        "error_code": result.error_code,
        "message": result.message,
        "attempts": result.attempts,
        "source": source,
        "reason": reason,
        "note": result.note,
    }


def event_record(event: str, *, run_id: str, **fields: Any) -> dict[str, Any]:
    """Return a run-level audit record: it has an ``event`` and never an ``outcome``."""
    return {"ts": timestamp(), "run_id": run_id, "event": event, **fields}
