"""The delete pipeline: rows → bounded queue → workers → audit, with a graceful stop.

One producer reads rows and audits invalid and duplicate ones at once (they never reach the
server); valid rows go through a bounded queue to ``settings.concurrency`` workers, so the
number of requests in flight can never exceed it. Each worker hands one UID at a time to the
``send.Sender`` (pacer, intent, call, retries) and audits the result or, in a batched soft run
(``Settings.batch`` above 1), one batch at a time to the ``batch.Batcher`` (one bulk call per
batch, split when refused); the ``tally.Tally`` counts it all and becomes the ``Summary``.

A fatal answer (bad key, no access, plan) or a stop request halts the run: nothing new is sent,
requests in flight finish (within ``stop_grace`` seconds) and are audited. The pacer, the
retry policy, the API client and the clock are passed in, or built from the settings.
The stop's grace and the progress tick are waited on the loop's own time: they race requests
in flight, which an injected clock cannot hurry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final

import structlog

from bulkdelete._version import __version__
from bulkdelete.api import Client, open_session
from bulkdelete.audit import AuditWriter, Pseudonyms
from bulkdelete.batch import Batcher, BatchSize
from bulkdelete.clock import SYSTEM_CLOCK, Clock
from bulkdelete.erasure import Erasure
from bulkdelete.errors import AuditError
from bulkdelete.intake import Batches, Intake, Rows, as_async
from bulkdelete.outcome import Answer
from bulkdelete.pacing import Pacer
from bulkdelete.progress import NullReporter, Reporter, Snapshot
from bulkdelete.records import (
    Location,
    Manifest,
    RunStarted,
    input_read,
    run_settings,
)
from bulkdelete.resume import Resume
from bulkdelete.retry import RetryPolicy, pacer_and_policy
from bulkdelete.rows import Row, make_row
from bulkdelete.send import API_UNAVAILABLE, Api, Sender
from bulkdelete.settings import DEFAULTS, Settings
from bulkdelete.summary import RunStatus, Summary
from bulkdelete.tally import SAMPLES_PER_SECOND, Tally, finish_record
from bulkdelete.uidset import UidSet

_QUEUE_PER_WORKER: Final = 4
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
        sender: Sender,
        *,
        clock: Clock,
        stop: asyncio.Event,
        stop_grace: float,
        resume: Resume | None,
        progress: Reporter,
        total: int | None,
        max_deletes: int | None = None,
        on_halt: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.batcher = Batcher(sender, sender.api, BatchSize(settings.batch))
        self.tally = sender.tally
        self.pacer = sender.pacer
        self.run_id = sender.run_id
        self.clock = clock
        self.started = clock.monotonic()
        self.stop = stop
        self.stop_grace = stop_grace
        self.progress = progress
        self.total = total
        self.on_halt = on_halt
        self.fatal: Answer | None = None
        self.erasure = Erasure(
            sender, abort=self.abort, erase=settings.erase_deactivated, clock=clock.monotonic
        )
        self.intake = Intake(
            sender,
            workers=settings.concurrency,
            resume=resume,
            max_deletes=max_deletes,
            abort=lambda why, halt: self.abort(why, halt=halt),
        )

    async def work(self, queue: asyncio.Queue[Row | None]) -> None:
        if self.settings.batch > 1:
            await self.work_batches(Batches(queue, self.settings.batch))
            return
        while (row := await queue.get()) is not None:
            if self.pacer.halted:
                continue  # drained, not sent (counted unsent): a resumed run picks it up
            uid = row.uid
            assert uid is not None  # noqa: S101  (the producer queues valid rows only)
            where = Location.parse(row.source)
            sent = await self.sender.delete(uid, where, ref=self.sender.named_ref(row))
            if sent is None:  # the run halted before its first request
                continue
            if sent.fatal is not None:
                self.abort(sent.fatal)
            await self.erasure.settle(row, sent.result, where)

    async def work_batches(self, batches: Batches) -> None:
        while (rows := await batches.next()) is not None:
            if not self.pacer.halted and (fatal := await self.batcher.send_rows(rows)):
                self.abort(fatal)

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

    def snapshot(self) -> Snapshot:
        elapsed = self.clock.monotonic() - self.started
        return self.tally.snapshot(self.pacer, total=self.total, elapsed=elapsed)

    async def report_progress(self) -> None:
        # The display's tick is real time, as it is for the one who watches it.
        while True:
            await asyncio.sleep(1 / SAMPLES_PER_SECOND)
            self.tally.sample()
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
            cause = await self.sender.check_access()
            if cause is not None:
                self.abort(cause)
            if not self.pacer.halted:
                await self._pipeline(rows)
                await self.erasure.finish()
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            self.progress.close(self.snapshot())

    async def _pipeline(self, rows: Rows) -> None:
        # Batches are taken from what is queued: room for a few whole ones keeps them full.
        queue: asyncio.Queue[Row | None] = asyncio.Queue(
            maxsize=max(self.settings.concurrency, 2 * self.settings.batch) * _QUEUE_PER_WORKER
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.work(queue), name=f"worker-{n}")
                    for n in range(self.settings.concurrency)
                ]
                # The producer is waited for with the workers, so a stop's grace runs from the
                # stop even while the producer waits for room in a queue no idle worker drains.
                producer = self.intake.produce(rows, queue)
                tasks.append(group.create_task(producer, name="producer"))
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

    def summary(self, started: float, *, audit_failure: str | None = None) -> Summary:
        return self.tally.summary(
            self.settings,
            run_id=self.run_id,
            status=self.status(),
            fatal=self.fatal_answer(),
            duration=self.clock.monotonic() - started,
            total=self.total,
            audit_failure=audit_failure,
            rate_limited=self.pacer.throttled_answers,
        )


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
        async for value in as_async(uids):
            number += 1
            yield make_row(f"uids:{number}", value, seen)

    return await run_delete(settings, rows(), stop=stop)


async def run_delete(
    settings: Settings,
    rows: Rows,
    *,
    client: Api | None = None,
    pacer: Pacer | None = None,
    policy: RetryPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    stop: asyncio.Event | None = None,
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

    ``client`` defaults to an ``api.Client`` over ``open_session(settings)``, closed at the end;
    one passed in stays the caller's. ``pacer`` and ``policy`` default to
    ``retry.pacer_and_policy(settings, clock)``; ``clock`` also times the run. Setting ``stop``
    asks for a graceful stop: no new UID is sent and requests in flight get ``stop_grace``
    seconds to finish. ``resume`` skips rows an earlier run settled. ``progress`` is shown a
    ``Snapshot`` four times a second, ``total`` being the rows expected. ``max_deletes`` caps
    the valid UIDs read: at the first one beyond it the run stops reading (``MAX_DELETES``) and
    sends the ones before. An ``InputError`` from ``rows`` stops it at once (``INPUT_ERROR``).
    ``inputs_read`` says what was read of each input the manifest could not describe (a
    stream): an ``input_read`` line each, written before ``run_finished``. ``on_halt`` is called
    when the run stops sending (a stop, a fatal answer), so that ``rows`` can stop waiting for
    input that may never come.
    """
    run_id = run_id or new_run_id()
    # Every log event of the run names it and its audit, whichever task or module logs it.
    logged = structlog.contextvars.bind_contextvars(run_id=run_id, audit=str(settings.audit_path))
    default_pacer, default_policy = pacer_and_policy(settings, clock)
    pacer, policy = pacer or default_pacer, policy or default_policy
    stop = stop or asyncio.Event()
    started = clock.monotonic()
    session = open_session(settings) if client is None else None
    if session is not None:
        client = Client(session, base_url=settings.base_url, api_key=settings.api_key.reveal())
    assert client is not None  # noqa: S101  (given, or made just above)
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
            sender = Sender(
                api=client,
                pacer=pacer,
                policy=policy,
                audit=audit,
                tally=Tally(),
                run_id=run_id,
                permanent=settings.permanent,
                pseudonyms=Pseudonyms.of_run(settings),
                lost=resume.index.unknown if resume else None,
            )
            run = _Run(
                settings,
                sender,
                clock=clock,
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
                audit.write(finish_record(summary, pacer.limit_per_minute))

            try:
                await run.execute(rows)
            except Exception:
                # A fault, not an ending: without run_finished the run reads as cut short, like
                # a kill, so report names the UIDs it left unknown instead of "completed".
                raise
            except BaseException:  # cancelled by a second signal: an interrupted run
                finish(run.summary(started))
                raise
            summary = run.summary(started)
            finish(summary)
        # Closed: the run's last line is written, so the head anchors the whole audit.
        summary = dataclasses.replace(summary, head=audit.head, audit_lines=audit.lines)
    except AuditError as failed:
        if run is None:
            raise  # the audit could not even be opened: nothing was sent
        # The audit took no more lines (a full disk, a file size limit), so the run stopped
        # sending. Requests had left: what the run did is told as a value, not an exception.
        summary = run.summary(started, audit_failure=str(failed))
    finally:
        if session is not None:
            await session.close()
        structlog.contextvars.reset_contextvars(**logged)
    return summary
