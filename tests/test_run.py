"""The run core (``run.py`` with ``send.py``, ``tally.py`` and ``intake.py``), in process.

Each test drives ``run_delete`` against the fake server in this process (``FakeServer``) over
loopback, with the pacer's and the retries' time on a ``fakeclock.FakeClock``.

Why that fake clock, and not a loop on virtual time: the requests are real HTTP on real sockets,
and a loop that jumps over its timers whenever it would wait jumps over them while bytes are in
flight too, firing the client's time-outs (and the fake's latency) at moments that never came.
An in-process transport that called the fake's app without sockets would allow a virtual loop,
but aiohttp's client has none (httpx's ``MockTransport`` has no counterpart): it would mean
faking the client, and these tests would no longer run the real client against the real fake.
So the loop keeps real time, and only the waits the run decides on itself (a 429's pause,
backoff, a turn's wait) are jumped: the clock's sleeps return at once and move it, and each is
recorded. The clock also follows the loop's time, so that round trips measure what they took.
The stop's grace and the progress tick race requests in flight: they stay on the loop's time.
One case the clock does not fit: a wait polled while a request is in flight (an outage's probe)
would make it run fast, so outages are left to ``test_pacing``.

``Watched`` wraps the real client and notes, on the fake clock, when each DELETE left and when
its answer came: what the server cannot tell, since it sees real time only.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeclock import FakeClock
from helpers import API_KEY

from bulkdelete.api import Client, open_session
from bulkdelete.audit import Pseudonyms, read_records
from bulkdelete.fake import FakeConfig, FakeServer
from bulkdelete.outcome import Answer, Outcome
from bulkdelete.records import Record, RowOutcome, RunFinished, Sending
from bulkdelete.resume import Resume, load_resume_index
from bulkdelete.rows import Row, make_row
from bulkdelete.run import run_delete
from bulkdelete.settings import Secret, Settings
from bulkdelete.summary import RunStatus, Summary
from bulkdelete.uidset import UidSet

USERS = [f"user-{n}" for n in range(12)]


@dataclass(frozen=True)
class Event:
    """A DELETE leaving (``answer`` None) or its answer arriving, on the fake clock."""

    at: float
    uid: str
    answer: Answer | None = None


@dataclass
class Watched:
    """The real client, noting each DELETE and answer on the fake clock (see the docstring)."""

    client: Client
    clock: FakeClock
    on_send: Callable[[int], None] = lambda _sent: None  # called with the sends so far
    events: list[Event] = field(default_factory=list)

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer:
        self.events.append(Event(self.clock.now, uid))
        self.on_send(sum(event.answer is None for event in self.events))
        answer = await self.client.delete_user(uid, permanent=permanent)
        self.events.append(Event(self.clock.now, uid, answer))
        return answer

    async def deactivate_users(self, uids: Sequence[str]) -> Answer:
        for uid in uids:
            self.events.append(Event(self.clock.now, uid))
        self.on_send(sum(event.answer is None for event in self.events))
        answer = await self.client.deactivate_users(uids)
        self.events.extend(Event(self.clock.now, uid, answer) for uid in uids)
        return answer

    async def reactivate_users(self, uids: Sequence[str]) -> Answer:
        return await self.client.reactivate_users(uids)

    async def check_access(self) -> Answer:
        return await self.client.check_access()


@dataclass
class Ran:
    """What one run returned, wrote and sent."""

    summary: Summary
    records: list[Record]
    events: list[Event]
    clock: FakeClock

    def outcomes(self) -> list[RowOutcome]:
        return [r for r in self.records if isinstance(r, RowOutcome)]

    def sent(self) -> list[str]:
        return [r.normalised_uid for r in self.records if isinstance(r, Sending)]

    def finished(self) -> RunFinished:
        (last,) = [r for r in self.records if isinstance(r, RunFinished)]
        return last


def rows_of(values: Iterable[str]) -> list[Row]:
    """Return the rows an input of ``values`` holds, one per line of ``in``."""
    seen = UidSet()
    return [make_row(f"in:{n}", value, seen) for n, value in enumerate(values, start=1)]


async def delete(
    server: FakeServer,
    audit: Path,
    rows: list[Row],
    *,
    stop_after_sends: int | None = None,
    resume: Resume | None = None,
    **settings: Any,
) -> Ran:
    """Run ``rows`` through ``run_delete`` against ``server`` on a fake clock."""
    # One DELETE per user unless a test batches: these tests watch each UID's request.
    options: dict[str, Any] = {"rate": 1_000_000.0, "concurrency": 4, "batch_size": 1} | settings
    config = Settings(
        base_url=server.base_url, api_key=Secret(API_KEY), audit_path=audit, **options
    )
    clock = FakeClock(follow=asyncio.get_running_loop().time)
    stop = asyncio.Event()

    def on_send(sent: int) -> None:
        if sent == stop_after_sends:
            stop.set()

    async with open_session(config) as session:
        client = Client(session, base_url=config.base_url, api_key=API_KEY)
        watched = Watched(client, clock, on_send)
        summary = await run_delete(
            config, rows, client=watched, clock=clock.as_clock(), stop=stop, resume=resume,
            total=len(rows), stop_grace=5.0,
        )  # fmt: skip
    records = [r for _, r in read_records(audit) if r.run_id == summary.run_id]
    return Ran(summary, records, watched.events, clock)


def accounted_for(ran: Ran, rows: int) -> bool:
    """Tell whether the summary places every row, and the audit's last line says the same."""
    summary, finished = ran.summary, ran.finished()
    return (
        summary.read + (summary.unread or 0) == rows
        and summary.rows == len(ran.outcomes())
        and finished.totals == {o.value: summary.counts.get(o, 0) for o in Outcome}
        and (finished.unsent, finished.unanswered, finished.skipped)
        == (summary.unsent, summary.unanswered, summary.skipped)
    )


async def test_every_row_is_audited_once_and_bad_rows_are_never_sent(tmp_path: Path) -> None:
    """Valid, missing, invalid and repeated rows: one outcome line each; only UIDs are sent."""
    values = [*USERS[:4], "ghost", "../x", "User-1", "", USERS[4]]
    async with FakeServer(FakeConfig(api_key=API_KEY, users=frozenset(USERS))) as server:
        ran = await delete(server, tmp_path / "a.jsonl", rows_of(values))
        sent = dict(server.stats.deletes_by_uid)

    by_line = Counter(r.source for r in ran.outcomes())
    assert sorted(by_line.items()) == sorted((f"in:{n}", 1) for n in range(1, len(values) + 1))
    expected = {*USERS[:5], "ghost"}
    assert (sent, set(ran.sent())) == (dict.fromkeys(expected, 1), expected)
    assert dict(ran.summary.counts) == {
        Outcome.DELETED: 5,
        Outcome.NOT_FOUND: 1,
        Outcome.INVALID: 2,
        Outcome.DUPLICATE: 1,
    }
    assert ran.summary.status is RunStatus.COMPLETED
    assert accounted_for(ran, len(values))
    assert ran.summary.requests == 1 + len(expected)  # the credential check, one DELETE each


async def test_a_429_pauses_every_worker_for_its_retry_after(tmp_path: Path) -> None:
    """Throttled DELETEs (Retry-After: 2): no request leaves until 2 s after a 429 came back,
    on the fake clock, and every user is deleted in the end."""
    config = FakeConfig(
        api_key=API_KEY, users=frozenset(USERS), throttle_rate=0.3, fault_retry_after=2.0, seed=0
    )
    async with FakeServer(config) as server:
        ran = await delete(server, tmp_path / "a.jsonl", rows_of(USERS))
        throttled = server.stats.faults["throttle"]

    refusals = [
        (n, e.at)
        for n, e in enumerate(ran.events)
        if e.answer is not None and e.answer.http_status == 429
    ]
    too_soon = [
        (refused_at, event.at)
        for n, refused_at in refusals
        for event in ran.events[n + 1 :]
        if event.answer is None and event.at < refused_at + 2.0
    ]
    assert throttled >= 2
    assert (len(refusals), too_soon) == (throttled, [])
    assert sum(ran.clock.sleeps) >= 2.0  # the pauses were waited on the fake clock
    assert dict(ran.summary.counts) == {Outcome.DELETED: len(USERS)}
    assert ran.summary.requests == 1 + len(USERS) + throttled
    assert accounted_for(ran, len(USERS))


async def test_a_fatal_answer_halts_the_run(tmp_path: Path) -> None:
    """A key revoked after 5 DELETEs: the first refusal ends the run, aborted, and no DELETE
    leaves after it; every row read is audited or counted unsent."""
    config = FakeConfig(api_key=API_KEY, users=frozenset(USERS), revoke_key_after=5)
    async with FakeServer(config) as server:
        ran = await delete(server, tmp_path / "a.jsonl", rows_of(USERS))

    fatal = next(
        n for n, e in enumerate(ran.events) if e.answer and e.answer.error_code is not None
    )
    sent_after = [e.uid for e in ran.events[fatal + 1 :] if e.answer is None]
    summary = ran.summary
    assert (summary.status, summary.fatal_code) == (RunStatus.ABORTED, "AUTH_ERR_APIKEY_NOT_FOUND")
    assert sent_after == []
    assert summary.counts[Outcome.DELETED] == 5
    assert summary.unsent == len(USERS) - summary.rows > 0
    assert ran.finished().status is RunStatus.ABORTED
    assert accounted_for(ran, len(USERS))


async def test_a_stop_lets_requests_in_flight_finish_within_the_grace(tmp_path: Path) -> None:
    """A stop after the 6th DELETE: the run ends interrupted, nothing new is sent after the
    requests already on their way, and each of those is answered and audited."""
    config = FakeConfig(api_key=API_KEY, users=frozenset(USERS), latency=0.1)
    async with FakeServer(config) as server:
        ran = await delete(server, tmp_path / "a.jsonl", rows_of(USERS), stop_after_sends=6)
        sent = set(server.stats.deletes_by_uid)

    summary = ran.summary
    audited = {r.normalised_uid for r in ran.outcomes()}
    assert summary.status is RunStatus.INTERRUPTED
    assert 6 <= len(sent) <= 6 + 4  # those on their way when it stopped: at most one a worker
    assert (set(ran.sent()), audited, summary.unanswered) == (sent, sent, 0)
    assert accounted_for(ran, len(USERS))


async def test_a_resumed_run_skips_the_rows_settled_before(tmp_path: Path) -> None:
    """Stopped after 5 DELETEs, then resumed from the same audit: the settled UIDs are skipped,
    the rest are sent, and no user gets a second DELETE."""
    audit = tmp_path / "a.jsonl"
    async with FakeServer(FakeConfig(api_key=API_KEY, users=frozenset(USERS))) as server:
        first = await delete(server, audit, rows_of(USERS), stop_after_sends=5, concurrency=1)
        plan = Resume(index=load_resume_index(audit), file_hashes={}, pseudonyms=Pseudonyms(None))
        second = await delete(server, audit, rows_of(USERS), resume=plan)
        sent = dict(server.stats.deletes_by_uid)

    settled = {r.normalised_uid for r in first.outcomes()}
    assert second.summary.skipped == len(settled) > 0
    assert set(second.sent()) == set(USERS) - settled
    assert sent == dict.fromkeys(USERS, 1)
    assert second.summary.status is RunStatus.COMPLETED
    assert accounted_for(second, len(USERS))
