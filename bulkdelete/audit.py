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
import fcntl
import functools
import hashlib
import hmac
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import orjson

from bulkdelete import privatefile
from bulkdelete.errors import AuditError
from bulkdelete.outcome import Result
from bulkdelete.settings import KEYED_CHAIN
from bulkdelete.uidset import UidSet

Record = Mapping[str, Any]

AUDIT_STARTS: Final = frozenset({"run_started", "check_started"})  # what opens a run's lines
_FSYNC_INTERVAL: Final = 1.0
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
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or record.get("event") not in AUDIT_STARTS:
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
        self._prev: str | None = None
        self.repaired_bytes = 0
        self.lines_written = 0
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
            self._prev = None if previous is None else link(previous, self._chain_key)
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

    def write(self, record: Record) -> None:
        """Queue one record; it is encoded now so later changes to ``record`` cannot alter it.

        Each line carries ``prev``, the link to the line before it (``None`` for a file's first
        line), so an edited, removed, duplicated or moved line breaks the chain.
        """
        if self._error is not None:
            raise self._error
        line = orjson.dumps({**record, "prev": self._prev})
        self._prev = link(line, self._chain_key)
        self._pending.append(line + b"\n")
        self._wake.set()

    def write_through(self, record: Record) -> None:
        """Write one record, and every record queued before it, to the kernel now.

        From then on the line survives kill -9. One ``os.write`` to the page cache costs a few
        microseconds, less than waiting for the writer task's next batch.
        """
        self.write(record)
        self._flush()

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


@functools.lru_cache(maxsize=2)
def _second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def timestamp() -> str:
    """Return the current time as RFC 3339 UTC with milliseconds, as every audit line carries."""
    now = time.time()
    whole = int(now)
    # Formatting the date costs more than the rest of a line: it is done once per second.
    return f"{_second(whole)}.{int((now - whole) * 1000):03d}Z"


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


_FINAL = frozenset({"deleted", "not_found"})
_SETTLED_ROWS = frozenset({"invalid", "duplicate"})
StreamedRow = tuple[str, int, str, str]  # (input name, line, uid as audited, outcome)


@dataclass(slots=True)
class ResumeIndex:
    """What an existing audit already settled, for ``--resume``.

    Rows are recognised by the SHA-256 of their input file and their line, so a resumed run may
    name the same file by another path. A streamed input (stdin) has no hash until its end: its
    rows are recognised by name, line, the value as audited and the outcome.
    """

    final_uids: UidSet = field(default_factory=UidSet)
    settled_rows: set[tuple[str, int]] = field(default_factory=set)
    settled_streamed: set[StreamedRow] = field(default_factory=set)
    streamed: set[str] = field(default_factory=set)  # names of inputs some run streamed
    unknown: dict[str, str] = field(default_factory=dict)  # uid sent, no outcome: uid -> run id
    permanent: set[bool] = field(default_factory=set)
    base_urls: set[str] = field(default_factory=set)
    uid_hash: set[bool] = field(default_factory=set)
    keyed: bool = False  # some run chained its lines with an HMAC key
    key_ids: set[str] = field(default_factory=set)  # the keyed runs' ``audit_key_id`` values
    input_hashes: set[str] = field(default_factory=set)  # SHA-256 of every input a run read
    runs: int = 0
    last_run: str | None = None  # the run id of the audit's last delete run
    last_status: str | None = None  # its run_finished status; None: it has none (killed)

    @property
    def last_run_unfinished(self) -> bool:
        """Tell whether the audit's last delete run ended other than ``completed``.

        Only the last run counts: an interrupted run that a later ``--resume`` completed is
        finished business. Read-backs (``check``) are not delete runs and do not count.
        """
        return self.last_run is not None and self.last_status != "completed"

    def settles(self, *, uid: str | None, file_sha256: str | None, line: int) -> bool:
        """Tell whether a row needs nothing more: its UID is final or the row was audited."""
        if uid is not None and uid in self.final_uids:
            return True
        return file_sha256 is not None and (file_sha256, line) in self.settled_rows

    def settles_streamed(self, *, uid: str | None, row: StreamedRow) -> bool:
        """Tell whether a streamed row needs nothing more: its UID is final or it was audited.

        ``row`` is (input name, line, the value as the audit names it, the row's status): a
        row at that line of another stream is recognised only if it reads and judges the same.
        """
        if uid is not None and uid in self.final_uids:
            return True
        return row in self.settled_streamed


def load_resume_index(path: Path) -> ResumeIndex:
    """Read an audit and return what a resumed run must not do again."""
    index = ResumeIndex()
    inputs_by_run: dict[str, _RunInputs] = {}
    for number, record in read_records(path):
        try:
            _index_record(index, inputs_by_run, record)
        except (KeyError, TypeError, AttributeError) as exc:
            raise AuditError(
                f"not a line bulkdelete wrote ({type(exc).__name__}: {exc})",
                path=str(path),
                line=number,
            ) from None
    return index


_RunInputs = tuple[dict[str, str], set[str]]  # a run's files (name -> SHA-256) and streams


def _index_record(
    index: ResumeIndex, inputs_by_run: dict[str, _RunInputs], record: dict[str, Any]
) -> None:
    run_id = str(record.get("run_id", ""))
    event = record.get("event")
    if event == "run_started":
        index.runs += 1
        index.last_run, index.last_status = run_id, None
        settings = record.get("settings") or {}
        index.permanent.add(bool(settings.get("permanent")))
        index.base_urls.add(str(settings.get("base_url")))
        index.uid_hash.add(bool(settings.get("uid_hash")))
        if settings.get("audit_chain") == KEYED_CHAIN:
            index.keyed = True
            if settings.get("audit_key_id"):
                index.key_ids.add(str(settings["audit_key_id"]))
        inputs = record.get("inputs") or ()
        streams = {str(f["name"]) for f in inputs if f.get("streamed")}
        files = {str(f["name"]): str(f["sha256"]) for f in inputs if not f.get("streamed")}
        inputs_by_run[run_id] = files, streams
        index.input_hashes.update(files.values())
        index.streamed |= streams
    elif event == "sending":
        index.unknown[str(record["normalised_uid"])] = run_id
    elif event == "run_finished" and run_id == index.last_run:
        index.last_status = str(record["status"])
    outcome = record.get("outcome")
    if outcome is None:
        return
    uid = record.get("normalised_uid")
    if uid is not None and outcome != "duplicate":
        index.unknown.pop(uid, None)
        if outcome in _FINAL:
            index.final_uids.add(uid)
    if outcome in _SETTLED_ROWS:
        name, _, line = str(record.get("source", "")).rpartition(":")
        files, streams = inputs_by_run.get(run_id, ({}, set()))
        if not line.isdigit():
            return
        if name in streams:
            index.settled_streamed.add((name, int(line), str(record["uid"]), outcome))
        elif (sha := files.get(name)) is not None:
            index.settled_rows.add((sha, int(line)))
