"""The delete pipeline: rows → bounded queue → workers → audit, with a graceful stop.

One producer reads rows and audits invalid and duplicate ones at once (they never reach the
server); valid rows go through a bounded queue to ``settings.concurrency`` workers, so the
number of requests in flight can never exceed it. Each worker paces, sends and retries one UID
at a time and hands the final result to the audit writer.

Before a UID's first request leaves, a ``sending`` line is in the kernel's hands, so after a
crash the audit names every UID whose fate is unknown. A fatal answer (bad key, no access,
plan) or a stop request halts the run: nothing new is sent, requests in flight finish (within
``stop_grace`` seconds) and are audited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import structlog

from bulkdelete._version import __version__
from bulkdelete.api import Client, open_session
from bulkdelete.audit import AuditWriter, Pseudonyms
from bulkdelete.errors import AuditError, InputError
from bulkdelete.outcome import (
    Answer,
    Outcome,
    Result,
    Verdict,
    classify,
    fatal_cause,
    final_result,
)
from bulkdelete.pacing import Pacer
from bulkdelete.progress import NullReporter, Reporter, Snapshot
from bulkdelete.records import (
    InputStopped,
    Location,
    Manifest,
    RowOutcome,
    RunFinished,
    RunStarted,
    Sending,
    input_read,
    run_settings,
)
from bulkdelete.resume import Resume
from bulkdelete.retry import RetryPolicy, call_with_retries
from bulkdelete.rows import Row, make_row
from bulkdelete.settings import DEFAULTS, Settings
from bulkdelete.summary import RunStatus, Summary
from bulkdelete.uidset import UidSet

_QUEUE_PER_WORKER: Final = 4
_PROGRESS_TICK: Final = 0.25
_PRODUCER_YIELD_EVERY: Final = 256
_T = TypeVar("_T")
Rows = Iterable[Row] | AsyncIterable[Row]
API_UNAVAILABLE: Final = "API_UNAVAILABLE"  # the fatal code of an outage longer than allowed
INPUT_ERROR: Final = "INPUT_ERROR"  # the fatal code of a stream found unreadable mid-run
MAX_DELETES: Final = "MAX_DELETES"  # the fatal code of an input past --max-deletes valid UIDs
RATE_LIMITED: Final = "RATE_LIMITED"  # the fatal code of 429s and nothing else for that long

log = structlog.get_logger("bulkdelete")


def new_run_id() -> str:
    """Return a fresh run id that sorts by start time."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


class _Run:
    """The state of one run; ``execute`` drives it."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        audit: AuditWriter,
        client: Client,
        policy: RetryPolicy,
        stop: asyncio.Event,
        stop_grace: float,
        resume: Resume | None,
        progress: Reporter,
        total: int | None,
        max_deletes: int | None = None,
        on_halt: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.on_halt = on_halt
        self.max_deletes = max_deletes
        self.valid_read = 0  # valid, first-seen UIDs read, skipped ones included
        self.progress = progress
        self.total = total
        self.started = time.monotonic()
        self.retrying = 0
        self.failures: Counter[str] = Counter()
        self.peak_rate = 0.0
        self.run_id = run_id
        self.audit = audit
        self.client = client
        self.policy = policy
        self.pacer = Pacer(
            settings.rate_ceiling,
            max_concurrency=settings.concurrency,
            max_share=settings.max_share,
            max_outage=settings.max_outage,
            max_pause=settings.max_pause,
        )
        self.stop = stop
        self.stop_grace = stop_grace
        self.resume = resume
        self.counts: Counter[Outcome] = Counter()
        self.requests = 0
        self.retried = 0
        self.skipped = 0
        self.read = 0  # rows taken from the input; each ends audited, skipped, unsent or unanswered
        self.read_all = False  # the input ran out: no row was left unread
        self.unanswered = 0  # UIDs announced (``sending``) and not yet recorded
        self.fatal: Answer | None = None
        self.pseudonyms = Pseudonyms.of_run(settings)

    def record(self, row: Row, result: Result, where: Location) -> None:
        """Audit a row's outcome; ``where`` is its source (parsed once for both its lines)."""
        named = self.pseudonyms
        if named.active:  # the server's message may quote the UID
            result = dataclasses.replace(
                result, message=named.scrub(result.message, row.raw, row.uid)
            )
        try:
            self.audit.write(
                RowOutcome(
                    run_id=self.run_id,
                    uid=named.of(row.raw),
                    normalised_uid=None if row.uid is None else named.of(row.uid),
                    permanent=self.settings.permanent,
                    outcome=result.outcome,
                    http_status=result.http_status,
                    error_code=result.error_code,
                    message=result.message,
                    attempts=result.attempts,
                    source=where,
                    reason=row.reason,
                    note=result.note,
                    # A reference may quote the UID (a ticket "erase alice"): named as it is.
                    ref=named.scrub(row.ref, row.raw, row.uid),
                )
            )
        except AuditError:
            if result.attempts:  # sent, and its outcome never reached the audit: fate unknown
                self.unanswered += 1
            raise
        self.counts[result.outcome] += 1
        if result.outcome is Outcome.FAILED:
            code = result.error_code or f"HTTP {result.http_status}"
            self.failures[code] += 1

    async def produce(self, rows: Rows, queue: asyncio.Queue[Row | None]) -> None:
        try:
            await self._read(rows, queue)
        except InputError as exc:  # a stream turned out unreadable: what was sent stays sent
            message = f"{exc}; the run stopped there: nothing more was sent"
            self.stop_reading(INPUT_ERROR, Location(exc.source, exc.line), message, halt=True)
        for _ in range(self.settings.concurrency):
            await queue.put(None)

    async def _read(self, rows: Rows, queue: asyncio.Queue[Row | None]) -> None:
        async for row in _as_async(rows):
            self.read += 1
            if self.pacer.halted:
                break  # this row was read and is not sent: it counts as unsent
            if self.past_max_deletes(row):
                # The UIDs within the cap, already queued, are still sent: exactly the first N.
                # This row was read and is not sent: it counts as unsent.
                self.stop_reading(
                    MAX_DELETES,
                    Location.parse(row.source),
                    f"the input holds more than --max-deletes {self.max_deletes} valid UIDs: "
                    f"the first {self.max_deletes} were sent, {row.source} and the rest of the "
                    "input were not",
                    halt=False,
                )
                break
            if self.resume is not None and self.resume.settles(row):
                self.skipped += 1
            elif row.uid is None:
                self.record(row, Result(Outcome.INVALID), Location.parse(row.source))
            elif row.duplicate:
                self.record(row, Result(Outcome.DUPLICATE), Location.parse(row.source))
            else:
                await queue.put(row)
            if self.read % _PRODUCER_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let workers run even through a long run of bad rows
        else:
            self.read_all = True

    def past_max_deletes(self, row: Row) -> bool:
        """Count a valid row; tell whether it is one more than ``max_deletes`` allows.

        Rows an earlier run settled count too, so a resumed run stops where the first did.
        """
        if row.uid is None or row.duplicate:
            return False
        self.valid_read += 1
        return self.max_deletes is not None and self.valid_read > self.max_deletes

    def stop_reading(self, code: str, source: Location, message: str, *, halt: bool) -> None:
        """Stop reading the input: audit why; the run ends aborted, with ``halt`` at once."""
        self.audit.write(
            InputStopped(run_id=self.run_id, code=code, source=source, message=message)
        )
        self.abort(Answer(None, code, message), halt=halt)

    async def work(self, queue: asyncio.Queue[Row | None]) -> None:
        while (row := await queue.get()) is not None:
            if self.pacer.halted:
                continue  # drained, not sent (counted unsent): a resumed run picks it up
            where = Location.parse(row.source)
            result = await self.delete(row, where)
            if result is not None:  # None: the run halted before its first request
                self.record(row, result, where)

    async def delete(self, row: Row, where: Location) -> Result | None:
        uid = row.uid
        assert uid is not None  # noqa: S101  (the producer queues valid rows only)
        announced = waiting = False

        async def attempt() -> Answer:
            nonlocal announced, waiting
            if waiting:
                self.retrying -= 1
                waiting = False
            if not announced:
                # Intent before action: after a crash the audit names this UID as unknown.
                self.audit.write_through(
                    Sending(
                        run_id=self.run_id,
                        normalised_uid=self.pseudonyms.of(uid),
                        source=where,
                        ref=self.pseudonyms.scrub(row.ref, row.raw, uid),
                    )
                )
                announced = True
                self.unanswered += 1
            self.requests += 1
            return await self.client.delete_user(uid, permanent=self.settings.permanent)

        def on_retry(answer: Answer, attempt_number: int, sleep: float) -> None:
            nonlocal waiting
            self.retrying += 1
            waiting = True
            log.debug(
                "retry_scheduled",
                uid=uid,
                attempt=attempt_number,
                http_status=answer.http_status,
                error_code=answer.error_code,
                sleep=round(sleep, 3),
            )

        try:
            attempted = await call_with_retries(
                attempt, policy=self.policy, pacer=self.pacer, on_retry=on_retry
            )
        finally:
            if waiting:  # the run stopped during a backoff
                self.retrying -= 1
        # Not reached when the stop grace ran out mid-request: the UID stays unanswered.
        self.unanswered -= announced
        if attempted is None:
            return None
        self.requests += attempted.sends - attempted.attempts  # aiohttp's own resends
        if attempted.attempts > 1:
            self.retried += 1
        if classify(attempted.answer) is Verdict.FATAL:
            self.abort(attempted.answer)
        earlier_run = (
            self.resume.index.unknown.get(self.pseudonyms.of(uid)) if self.resume else None
        )
        result = final_result(
            attempted.answer,
            attempts=attempted.attempts,
            ambiguous_earlier=attempted.ambiguous_earlier,
        )
        if result.outcome is Outcome.NOT_FOUND and earlier_run and result.note is None:
            note = f"run {earlier_run} sent a request whose answer was lost; it probably deleted it"
            return dataclasses.replace(result, note=note)
        if attempted.abandoned:
            return dataclasses.replace(result, note="the run stopped before its next retry")
        if result.outcome is Outcome.FAILED and classify(attempted.answer) is Verdict.RETRY:
            tries = "1 attempt" if attempted.attempts == 1 else f"{attempted.attempts} attempts"
            note = (
                f"gave up after {tries} and {attempted.waited:.0f} s of waits "
                "(--max-attempts, --max-retry-time)"
            )
            return dataclasses.replace(result, note=note)
        return result

    def abort(self, answer: Answer, *, halt: bool = True) -> None:
        """Record why the run ends aborted; with ``halt``, nothing more is sent from now on."""
        if self.fatal is None:
            self.fatal = answer
            log.error(
                "run_aborted",
                error_code=answer.error_code,
                http_status=answer.http_status,
                message=answer.message,
            )
        if halt:
            self.halt()

    def halt(self) -> None:
        """Send nothing more; a source of rows waiting for its input (stdin) stops waiting."""
        self.pacer.halt()
        self.on_halt()

    async def preflight(self) -> None:
        """Check the key, the app and the base URL with one harmless read before any DELETE.

        Anything but CometChat's list of users (a 404 page, a redirect, HTML) is fatal: the
        DELETEs would go to the same wrong place.
        """
        attempted = await call_with_retries(
            self.client.check_access, policy=self.policy, pacer=self.pacer
        )
        if attempted is None:
            return
        self.requests += attempted.attempts
        answer = attempted.answer
        verdict = classify(answer)
        if verdict is Verdict.FATAL:
            self.abort(fatal_cause(answer))
        elif verdict is Verdict.RETRY and not attempted.abandoned:
            # Retries ran out without one usable answer: deleting would only fail the same way.
            reason = answer.error_code or f"HTTP {answer.http_status}"
            self.abort(
                Answer(
                    answer.http_status,
                    API_UNAVAILABLE,
                    f"the credential check got no usable answer ({reason}); nothing was deleted",
                )
            )

    def snapshot(self) -> Snapshot:
        return Snapshot(
            done=sum(self.counts.values()),
            total=self.total,
            skipped=self.skipped,
            counts={outcome.value: self.counts[outcome] for outcome in Outcome},
            in_flight=self.pacer.in_flight,
            retrying=self.retrying,
            rate_in_use=self.pacer.rate,
            limit_per_minute=self.pacer.limit_per_minute,
            budget_left=self.pacer.budget_left,
            expected_rate=self.pacer.expected_rate,
            paused_for=self.pacer.paused_for,
            elapsed=time.monotonic() - self.started,
            requests=self.requests,
        )

    async def report_progress(self) -> None:
        ticks_per_second = round(1 / _PROGRESS_TICK)
        recent: deque[int] = deque([self.requests], maxlen=ticks_per_second + 1)
        while True:
            await asyncio.sleep(_PROGRESS_TICK)
            recent.append(self.requests)
            if len(recent) == recent.maxlen:
                self.peak_rate = max(self.peak_rate, float(recent[-1] - recent[0]))
            self.progress.update(self.snapshot())

    async def watch_stop(self) -> None:
        await self.stop.wait()
        log.warning("stop_requested", grace_seconds=self.stop_grace)
        self.halt()

    async def execute(self, rows: Rows) -> None:
        watchers = [
            asyncio.create_task(self.watch_stop(), name="stop-watcher"),
            asyncio.create_task(self.report_progress(), name="progress"),
        ]
        try:
            await self.preflight()
            if not self.pacer.halted:
                await self._pipeline(rows)
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            self.progress.close(self.snapshot())

    async def _pipeline(self, rows: Rows) -> None:
        queue: asyncio.Queue[Row | None] = asyncio.Queue(
            maxsize=self.settings.concurrency * _QUEUE_PER_WORKER
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.work(queue), name=f"worker-{n}")
                    for n in range(self.settings.concurrency)
                ]
                # The producer is waited for with the workers, so a stop's grace runs from the
                # stop even while the producer waits for room in a queue no idle worker drains.
                tasks.append(group.create_task(self.produce(rows, queue), name="producer"))
                await self._wait_workers(tasks)
        except* AuditError as failed:
            # Outcomes can no longer be recorded: nothing more may be sent.
            self.pacer.halt()
            raise failed.exceptions[0] from None

    async def _wait_workers(self, workers: list[asyncio.Task[None]]) -> None:
        """Wait for the tasks; after a stop request, give them ``stop_grace`` seconds."""
        done = asyncio.gather(*workers)
        # A task's failure reaches the caller through the TaskGroup, which may cancel this wait
        # before it reads ``done``: mark it read, or asyncio logs it again as never retrieved.
        done.add_done_callback(lambda gathered: gathered.cancelled() or gathered.exception())
        if not self.stop.is_set():
            stopped = asyncio.create_task(self.stop.wait())
            either: set[asyncio.Future[Any]] = {done, stopped}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        if self.stop.is_set() and not done.done():
            try:
                await asyncio.wait_for(asyncio.shield(done), self.stop_grace)
            except TimeoutError:
                log.warning("stop_grace_expired", in_flight=self.pacer.in_flight)
                for task in workers:
                    task.cancel()
        await asyncio.gather(done, return_exceptions=True)

    def fatal_answer(self) -> Answer | None:
        """Return the answer that aborted the run, if one did (an outage counts as one)."""
        if self.fatal is None and self.pacer.outage_exceeded:
            return Answer(
                None,
                API_UNAVAILABLE,
                f"no usable answer for over {self.settings.max_outage:g} s (--max-outage)",
            )
        if self.fatal is None and self.pacer.refusal_exceeded:
            return Answer(
                429,
                RATE_LIMITED,
                f"every answer for over {self.settings.max_outage:g} s was 429 Too Many "
                "Requests (--max-outage)",
            )
        return self.fatal

    def status(self) -> RunStatus:
        if self.fatal_answer() is not None:
            return RunStatus.ABORTED
        if self.stop.is_set():
            return RunStatus.INTERRUPTED
        return RunStatus.COMPLETED


async def _as_async(items: Iterable[_T] | AsyncIterable[_T]) -> AsyncIterator[_T]:
    """Iterate a plain or an async iterable the same way."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def delete_users(
    uids: Iterable[str] | AsyncIterable[str],
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
) -> Summary:
    """Delete the users whose UIDs ``uids`` yields, exactly as ``bulkdelete delete`` would.

    Every value is validated and lowercased like a row of an input file (its audit ``source``
    is ``uids:<n>``, counting from 1); invalid values and repeats are audited, never sent.
    Setting ``stop`` asks for a graceful stop. Returns the run's ``Summary``; never raises for
    one UID's failure.
    """
    seen = UidSet()

    async def rows() -> AsyncIterator[Row]:
        number = 0
        async for value in _as_async(uids):
            number += 1
            yield make_row(f"uids:{number}", value, seen)

    return await run_delete(settings, rows(), stop=stop)


async def run_delete(
    settings: Settings,
    rows: Rows,
    *,
    session: aiohttp.ClientSession | None = None,
    stop: asyncio.Event | None = None,
    policy: RetryPolicy | None = None,
    run_id: str | None = None,
    stop_grace: float = DEFAULTS.stop_grace,
    manifest: Manifest | None = None,
    resume: Resume | None = None,
    progress: Reporter | None = None,
    total: int | None = None,
    max_deletes: int | None = None,
    inputs_read: Callable[[], Iterable[Mapping[str, object]]] | None = None,
    on_halt: Callable[[], None] = lambda: None,
) -> Summary:
    """Delete the valid UIDs among ``rows``, audit every row once, and return the summary.

    ``session`` defaults to ``open_session(settings)`` and is closed afterwards only when this
    function made it. Setting ``stop`` asks for a graceful stop: no new UID is sent and requests in
    flight get ``stop_grace`` seconds to finish. ``resume`` skips rows an earlier run settled.
    ``progress`` is shown a ``Snapshot`` four times a second, ``total`` being the rows expected.
    ``max_deletes`` caps the valid UIDs read: at the first one beyond it the run stops reading
    (``MAX_DELETES``) and sends the ones before. An ``InputError`` from ``rows`` stops it at once
    (``INPUT_ERROR``). ``inputs_read`` says what was read of each input the manifest could not
    describe (a stream): an ``input_read`` line each, written before ``run_finished``.
    ``on_halt`` is called when the run stops sending (a stop, a fatal answer), so that ``rows``
    can stop waiting for input that may never come.
    """
    run_id = run_id or new_run_id()
    # Every log event of the run names it and its audit, whichever task or module logs it.
    logged = structlog.contextvars.bind_contextvars(run_id=run_id, audit=str(settings.audit_path))
    policy = policy or RetryPolicy(
        max_attempts=settings.max_attempts, max_time=settings.max_retry_time
    )
    stop = stop or asyncio.Event()
    started = time.monotonic()
    own_session = session is None
    http = session if session is not None else open_session(settings)
    run: _Run | None = None
    try:
        chain_key = settings.audit_key.reveal().encode() if settings.audit_key else None
        async with AuditWriter(settings.audit_path, chain_key=chain_key) as audit:
            audit.write(
                RunStarted(
                    run_id=run_id,
                    version=__version__,
                    settings=run_settings(settings),
                    resumed=resume is not None and resume.restart_of is None,
                    restart_of=resume.restart_of if resume else None,
                    repaired_torn_tail_bytes=audit.repaired_bytes,
                    operator=manifest.operator if manifest else None,
                    inputs=manifest.inputs if manifest else None,
                )
            )
            client = Client(http, base_url=settings.base_url, api_key=settings.api_key.reveal())
            run = _Run(
                settings,
                run_id=run_id,
                audit=audit,
                client=client,
                policy=policy,
                stop=stop,
                stop_grace=stop_grace,
                resume=resume,
                progress=progress or NullReporter(),
                total=total,
                max_deletes=max_deletes,
                on_halt=on_halt,
            )

            def finish(summary: Summary) -> None:
                for facts in inputs_read() if inputs_read else ():
                    audit.write(input_read(run_id, facts))
                audit.write(_finish_record(summary, run.pacer.limit_per_minute))

            try:
                await run.execute(rows)
            except Exception:
                # A fault, not an ending: without run_finished the run reads as cut short, like
                # a kill, so report names the UIDs it left unknown instead of "completed".
                raise
            except BaseException:  # cancelled by a second signal: an interrupted run
                finish(_summarise(run, started))
                raise
            summary = _summarise(run, started)
            finish(summary)
        # Closed: the run's last line is written, so the head anchors the whole audit.
        summary = dataclasses.replace(summary, head=audit.head, audit_lines=audit.lines)
    except AuditError as failed:
        if run is None:
            raise  # the audit could not even be opened: nothing was sent
        # The audit took no more lines (a full disk, a file size limit), so the run stopped
        # sending. Requests had left: what the run did is told as a value, not an exception.
        summary = _summarise(run, started, audit_failure=str(failed))
    finally:
        if own_session:
            await http.close()
        structlog.contextvars.reset_contextvars(**logged)
    return summary


def _summarise(run: _Run, started: float, *, audit_failure: str | None = None) -> Summary:
    fatal = run.fatal_answer()
    audited = run.counts.total()
    if run.read_all:
        unread: int | None = 0
    elif run.total is not None:
        unread = max(run.total - run.read, 0)
    else:
        unread = None  # a library run stopped before the end of an iterable of unknown length
    return Summary(
        run_id=run.run_id,
        audit_path=run.settings.audit_path,
        target=run.settings.target,
        permanent=run.settings.permanent,
        status=RunStatus.AUDIT_FAILED if audit_failure else run.status(),
        counts=dict(run.counts),
        requests=run.requests,
        duration=time.monotonic() - started,
        fatal_code=fatal.error_code if fatal else None,
        fatal_message=audit_failure or (fatal.message if fatal else None),
        retried_uids=run.retried,
        skipped=run.skipped,
        # Whatever was read and is neither audited, skipped nor awaiting its answer was not
        # sent: queued, waiting for the pacer, or in the producer's hand when the run stopped.
        unsent=run.read - audited - run.skipped - run.unanswered,
        unanswered=run.unanswered,
        unread=unread,
        failures_by_code=dict(run.failures.most_common()),
        # A run shorter than a second sent all its requests within one second.
        peak_rate=run.peak_rate or float(run.requests),
        rate_limited=run.pacer.throttled_answers,
    )


def _finish_record(summary: Summary, limit_per_minute: int | None) -> RunFinished:
    return RunFinished(
        run_id=summary.run_id,
        status=summary.status,
        totals={outcome.value: summary.counts.get(outcome, 0) for outcome in Outcome},
        rows=summary.rows,
        skipped=summary.skipped,
        unsent=summary.unsent,
        unanswered=summary.unanswered,
        unread=summary.unread,
        total=summary.total,
        requests=summary.requests,
        duration_seconds=round(summary.duration, 3),
        fatal_code=summary.fatal_code,
        limit_per_minute=limit_per_minute,
    )
