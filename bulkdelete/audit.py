"""The audit journal: its single writer, its reader, and torn-tail repair.

The audit is JSONL, append-only, one line per input row plus run-level lines; ``records``
defines every kind of line. Only ``AuditWriter`` writes it: workers hand it records and a
single task turns them into lines, so lines never interleave. Each batch goes to the kernel in
one ``os.write`` (it survives kill -9 from then on) and is fsynced on a timer and at close, in a
thread so the event loop never waits on the disk (that also covers power loss).

A kill can leave the last line cut short with no newline. Opening the file for append cuts such
a torn tail off first, so the next record is never glued to the fragment; readers skip an
unterminated last line and fail loudly on any other line that is not a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from bulkdelete import privatefile
from bulkdelete.errors import AuditError
from bulkdelete.records import (
    CheckStarted,
    Record,
    RecordError,
    RunSettings,
    RunStarted,
    decode,
    encode,
)

if TYPE_CHECKING:
    from bulkdelete.settings import Settings

_FSYNC_INTERVAL: Final = 1.0
_TAIL_CHUNK: Final = 64 * 1024
_COUNT_CHUNK: Final = 1 << 20


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


_UNLINKED: Final = b',"prev":null}'  # how a file's first line ends


def _linked(value: str) -> bytes:
    """Return how the line after one whose link is ``value`` ends."""
    return b',"prev":"%b"}' % value.encode()


def link(line: bytes, key: bytes | None) -> str:
    """Return the chain value the line after ``line`` carries in ``prev``.

    ``line`` is the previous line's bytes without its newline. With ``key`` the link is an
    HMAC-SHA256, so only a holder of the key can rewrite the chain after editing a line.
    """
    if key is None:
        return hashlib.sha256(line).hexdigest()
    return hmac.new(key, line, hashlib.sha256).hexdigest()


class Pseudonyms:
    """What the audit calls a UID: the UID itself, or with a key an HMAC-SHA256 pseudonym.

    With ``--audit-uid-hash`` the audit proves what happened to each user without naming
    them; whoever holds the key (``BULKDELETE_AUDIT_KEY``) can recompute a UID's pseudonym
    from an input file and find its lines.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    @classmethod
    def of_run(cls, settings: Settings) -> Pseudonyms:
        """Return how a run with ``settings`` names UIDs: plainly, or by HMAC with the audit key."""
        key = settings.audit_key if settings.uid_hash else None
        return cls(key.reveal().encode() if key else None)

    @property
    def active(self) -> bool:
        """True when UIDs are replaced by pseudonyms."""
        return self._key is not None

    def of(self, value: str) -> str:
        """Return what the audit records for ``value``."""
        if self._key is None:
            return value
        return (
            "hmac:"
            + hmac.new(self._key, value.encode("utf-8", "surrogatepass"), "sha256").hexdigest()
        )

    def scrub(self, text: str | None, *values: str | None) -> str | None:
        """Replace each of ``values`` inside ``text`` (a server message may quote the UID)."""
        if text is None or self._key is None:
            return text
        for value in values:
            if value:
                text = text.replace(value, self.of(value))
        return text


def count_lines(path: Path) -> int:
    """Return how many lines ``path`` holds (0 for a missing file); after ``repair_torn_tail``
    every one of them ends with a newline."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return 0
    with handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(_COUNT_CHUNK), b""))


def last_line(path: Path) -> bytes | None:
    """Return the last line of ``path`` without its newline; None for a missing or empty file.

    Call it after ``repair_torn_tail``, when the file ends with a newline.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        end = handle.seek(0, os.SEEK_END)
        tail = b""
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            handle.seek(start)
            tail = handle.read(end - start) + tail
            end = start
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0:
                return tail[cut + 1 :].removesuffix(b"\n")
        return tail.removesuffix(b"\n") or None


def _lock(fd: int, path: Path) -> None:
    """Take the audit's writer lock, or fail at once if another run holds it.

    Two runs appending to one audit (an overlapping cron start, say) would interleave their
    chains and both send the UIDs neither has settled yet. The lock is released when the file
    is closed, and by the kernel when the process dies, so a kill -9 leaves no stale lock.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise AuditError(
            "another bulkdelete run is writing this audit; wait for it to end, or use another "
            "--audit",
            path=str(path),
        ) from None


def refuse_a_foreign_file(path: Path) -> None:
    """Refuse a non-empty file whose first line no bulkdelete run or check wrote.

    Appending to it would first cut its last line as a torn tail: a CSV named by mistake (or
    the input itself) would lose data. Call it before appending to a file that exists.
    """
    with path.open("rb") as handle:
        first = handle.readline(_TAIL_CHUNK)
    if not first:
        return
    try:
        record: Record | None = decode(first)
    except RecordError:
        record = None
    if not isinstance(record, RunStarted | CheckStarted):
        raise AuditError(
            "is not a bulkdelete audit (its first line is not a run_started or check_started "
            "line); nothing was written to it: name a new file with --audit",
            path=str(path),
        )


class AuditWriter:
    """The one writer of an audit file; use as an async context manager inside the run's loop.

    ``write`` queues a record and returns at once; a writer task hands queued lines to the
    kernel in batches, in the order they were written. ``write_through`` hands its line (and
    all queued before it) to the kernel before it returns: a request may leave right after.
    """

    def __init__(
        self,
        path: Path,
        *,
        chain_key: bytes | None = None,
        fsync_interval: float = _FSYNC_INTERVAL,
    ) -> None:
        self.path = path
        self._chain_key = chain_key
        self._prev = _UNLINKED
        self.repaired_bytes = 0
        self.lines_written = 0
        self.lines_before = 0  # lines the file held when it was opened
        self.head: str | None = None  # the link of the last line: what the next one carries
        self._fsync_interval = fsync_interval
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._fd = -1
        self._task: asyncio.Task[None] | None = None
        self._error: AuditError | None = None
        self._sync_now = False
        self._sync_due: asyncio.TimerHandle | None = None  # set while written lines await fsync

    async def __aenter__(self) -> Self:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = privatefile.open_fd(self.path, os.O_WRONLY | os.O_APPEND)
            _lock(self._fd, self.path)
            # Only the lock holder may cut a torn tail: another run's line may be half written.
            self.repaired_bytes = repair_torn_tail(self.path)
            previous = last_line(self.path)
            if previous is not None:
                self.head = link(previous, self._chain_key)
                self._prev = _linked(self.head)
                self.lines_before = count_lines(self.path)
        except (OSError, AuditError) as exc:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if isinstance(exc, AuditError):
                raise
            raise AuditError(
                f"cannot open the audit for appending: {exc.strerror}", path=str(self.path)
            ) from exc
        self._task = asyncio.create_task(self._drain(), name="audit-writer")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def write(self, record: Record | Mapping[str, Any]) -> None:
        """Queue one record; it is encoded now so later changes to ``record`` cannot alter it.

        Each line ends with ``prev``, the link to the line before it (``null`` for a file's
        first line), so an edited, removed, duplicated or moved line breaks the chain.
        """
        if self._error is not None:
            raise self._error
        body = encode(record)
        # The link goes in as bytes, before the closing brace: no copy of the record per line.
        line = body[:-1] + (self._prev if len(body) > 2 else self._prev[1:])  # noqa: PLR2004  ({})
        self.head = link(line, self._chain_key)
        self._prev = _linked(self.head)
        self._pending.append(line + b"\n")
        self._wake.set()

    def write_through(self, record: Record | Mapping[str, Any]) -> None:
        """Write one record, and every record queued before it, to the kernel now.

        From then on the line survives kill -9. One ``os.write`` to the page cache costs a few
        microseconds, less than waiting for the writer task's next batch.
        """
        self.write(record)
        self._flush()

    @property
    def lines(self) -> int:
        """Return the lines the file holds: those it had and those written to it since.

        With ``head``, it anchors the audit: ``verify --expect-head`` checks it still ends there.
        """
        return self.lines_before + self.lines_written

    async def close(self) -> None:
        """Write every queued record, fsync, and close the file."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.shield(self._task)
        finally:
            self._task = None
            if self._sync_due is not None:
                self._sync_due.cancel()
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1

    async def _drain(self) -> None:
        while True:
            if not self._pending and not self._closing and not self._sync_now:
                await self._wake.wait()
            self._wake.clear()
            self._flush()
            if self._closing and not self._pending:
                return  # close() fsyncs
            if self._sync_now:
                self._sync_now, self._sync_due = False, None
                try:
                    await asyncio.to_thread(os.fsync, self._fd)
                except OSError as exc:
                    raise self._failed(exc) from exc

    def _flush(self) -> None:
        """Hand every queued line to the kernel in one write, and see that an fsync follows."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        data = memoryview(b"".join(batch))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            raise self._failed(exc) from exc
        self.lines_written += len(batch)
        if self._sync_due is None:
            self._sync_due = asyncio.get_running_loop().call_later(
                self._fsync_interval, self._request_sync
            )

    def _failed(self, exc: OSError) -> AuditError:
        self._error = AuditError(
            f"cannot append to the audit: {exc.strerror or exc}", path=str(self.path)
        )
        return self._error

    def _request_sync(self) -> None:
        self._sync_now = True
        self._wake.set()


def read_records(path: Path) -> Iterator[tuple[int, Record]]:
    """Yield ``(line number, record)`` for every complete line of an audit file.

    An unterminated last line (a torn tail from a kill) is skipped; any other line that is not
    a record bulkdelete writes raises ``AuditError`` naming the file and the line.
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
                record = decode(line)
            except RecordError as exc:
                raise AuditError(
                    f"not a line bulkdelete wrote ({exc})", path=str(path), line=number
                ) from None
            yield number, record


def recorded_settings(paths: Iterable[Path]) -> list[RunSettings]:
    """Return the settings of every delete run the audits record, in order."""
    return [
        record.settings
        for path in paths
        for _number, record in read_records(path)
        if isinstance(record, RunStarted)
    ]
