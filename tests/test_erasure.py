"""The probe and the erasure of a permanent run (``erasure.py``), in process: ``run_delete``
against the fake server over loopback, through a client that can meddle with the bulk calls
(script an answer, halt the run right after a reactivation) where the fake alone cannot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from helpers import API_KEY

from bulkdelete import erasure
from bulkdelete.api import MAX_BULK_BODY, Client, open_session
from bulkdelete.audit import Pseudonyms, read_records
from bulkdelete.fake import FakeConfig, FakeServer
from bulkdelete.outcome import Answer, Body, BodyKind, Call, Outcome
from bulkdelete.pacing import Pacer
from bulkdelete.records import BatchSending, Probed, Record, RowOutcome
from bulkdelete.resume import Resume, load_resume_index
from bulkdelete.retry import pacer_and_policy
from bulkdelete.rows import Row, make_row
from bulkdelete.run import run_delete
from bulkdelete.settings import Secret, Settings
from bulkdelete.summary import RunStatus, Summary
from bulkdelete.uidset import UidSet

DEACTIVATED = frozenset({"off-1", "off-2", "off-3"})
ABSENT = ["gone-1"]
UNAVAILABLE = Answer(503, None, "unavailable", call=Call.BULK_DEACTIVATE)


@dataclass
class Meddling:
    """The real client; ``probe``/``reactivation`` answer the bulk calls instead of the
    server when set, and ``after_reactivation`` runs once a reactivation came back."""

    client: Client
    probe: Answer | None = None
    reactivation: Answer | None = None
    erasing_delete: Answer | None = None  # the answer to DELETEs after a reactivation
    after_probe: Callable[[], None] = lambda: None
    after_reactivation: Callable[[], None] = lambda: None
    reactivated: bool = False

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer:
        if self.reactivated and self.erasing_delete is not None:
            return self.erasing_delete
        return await self.client.delete_user(uid, permanent=permanent)

    async def check_access(self) -> Answer:
        return await self.client.check_access()

    async def deactivate_users(self, uids: Sequence[str]) -> Answer:
        answer = self.probe or await self.client.deactivate_users(uids)
        self.after_probe()
        return answer

    async def reactivate_users(self, uids: Sequence[str]) -> Answer:
        answer = self.reactivation or await self.client.reactivate_users(uids)
        self.reactivated = True
        self.after_reactivation()
        return answer


@dataclass
class Ran:
    summary: Summary
    records: list[Record]

    def rows(self) -> dict[str, RowOutcome]:
        return {
            r.normalised_uid: r
            for r in self.records
            if isinstance(r, RowOutcome) and r.normalised_uid is not None
        }


def rows_of(values: Sequence[str]) -> list[Row]:
    seen = UidSet()
    return [make_row(f"in:{n}", value, seen) for n, value in enumerate(values, start=1)]


async def erase(
    server: FakeServer,
    audit: Path,
    values: Sequence[str],
    *,
    meddle: Callable[[Meddling, Pacer], None] = lambda _m, _p: None,
    resume: Resume | None = None,
    **options: Any,
) -> Ran:
    """Run a permanent delete of ``values`` against ``server``; ``meddle`` sets the client up."""
    chosen = {"rate": 1_000_000.0, "concurrency": 4, "max_attempts": 2} | options
    settings = Settings(
        base_url=server.base_url, api_key=Secret(API_KEY), audit_path=audit, permanent=True,
        **chosen,
    )  # fmt: skip
    clock = FakeClock(follow=asyncio.get_running_loop().time)
    pacer, policy = pacer_and_policy(settings, clock.as_clock())
    async with open_session(settings) as session:
        client = Meddling(Client(session, base_url=server.base_url, api_key=API_KEY))
        meddle(client, pacer)
        summary = await run_delete(
            settings, rows_of(values), client=client, pacer=pacer, policy=policy,
            clock=clock.as_clock(), resume=resume, total=len(values),
        )  # fmt: skip
    records = [r for _, r in read_records(audit) if r.run_id == summary.run_id]
    return Ran(summary, records)


def not_found_mode(**changes: Any) -> FakeConfig:
    return FakeConfig(
        api_key=API_KEY, deactivated=DEACTIVATED, deactivated_not_found=True, **changes
    )


async def test_a_stop_after_the_reactivation_leaves_no_user_active_after_resume(
    tmp_path: Path,
) -> None:
    """The run halts between the reactivation and the DELETEs: those rows stay unanswered (no
    row line) and the users active; --resume sends their DELETE again, which erases them."""
    audit, values = tmp_path / "a.jsonl", sorted(DEACTIVATED)

    def halt_after_reactivation(client: Meddling, pacer: Pacer) -> None:
        client.after_reactivation = pacer.halt

    async with FakeServer(not_found_mode()) as server:
        first = await erase(
            server, audit, values, meddle=halt_after_reactivation, erase_deactivated=True
        )
        between = dict(server.stats.applied)
        plan = Resume(index=load_resume_index(audit), file_hashes={}, pseudonyms=Pseudonyms(None))
        second = await erase(server, audit, values, resume=plan, erase_deactivated=True)
        after = dict(server.stats.applied)

    assert (first.rows(), first.summary.unanswered) == ({}, 3)
    assert between == dict.fromkeys(values, "reactivated")  # active: the kill's danger
    assert plan.index.unknown.keys() == DEACTIVATED
    assert {uid: row.outcome for uid, row in second.rows().items()} == dict.fromkeys(
        values, Outcome.DELETED
    )
    assert after == dict.fromkeys(values, "removed")
    assert second.summary.status is RunStatus.COMPLETED


async def test_a_probe_without_a_usable_answer_fails_the_row(tmp_path: Path) -> None:
    """A probe that got no usable answer tells nothing: the not-found row is failed, with the
    probe's answer and a note, never a final not_found."""

    def probe_down(client: Meddling, _pacer: Pacer) -> None:
        client.probe = UNAVAILABLE

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(server, tmp_path / "a.jsonl", ABSENT, meddle=probe_down)

    row = ran.rows()["gone-1"]
    assert (row.outcome, row.http_status) == (Outcome.FAILED, 503)
    assert "probe" in (row.note or "")
    assert ran.summary.counts == {Outcome.FAILED: 1}


async def test_a_fatal_answer_to_the_probe_stops_the_run(tmp_path: Path) -> None:
    """A fatal code in the probe's answer aborts the run, as it would on a DELETE."""
    revoked = Answer(401, "AUTH_ERR_APIKEY_NOT_FOUND", "no such key", call=Call.BULK_DEACTIVATE)

    def probe_revoked(client: Meddling, _pacer: Pacer) -> None:
        client.probe = revoked

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(server, tmp_path / "a.jsonl", ABSENT, meddle=probe_revoked)

    assert ran.summary.status is RunStatus.ABORTED
    assert ran.summary.fatal_code == "AUTH_ERR_APIKEY_NOT_FOUND"
    assert ran.rows()["gone-1"].error_code == "AUTH_ERR_APIKEY_NOT_FOUND"


async def test_a_reactivation_that_did_not_take_leaves_the_user_not_erased(
    tmp_path: Path,
) -> None:
    """The reactivation's answer lists the user as not deactivated, yet the DELETE still finds
    it hidden: the row says deactivated and not erased, with the reactivation's word."""
    body = Body(BodyKind.OBJECT, data_object=True, not_deactivated=("off-1",))
    claimed_active = Answer(200, call=Call.BULK_REACTIVATE, body=body)

    def pretend(client: Meddling, _pacer: Pacer) -> None:
        client.reactivation = claimed_active

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", ["off-1"], meddle=pretend, erase_deactivated=True
        )

    row = ran.rows()["off-1"]
    assert (row.outcome, row.error_code) == (Outcome.FAILED, "DEACTIVATED_NOT_ERASED")
    assert "did not take (active)" in (row.note or "")


async def test_a_user_gone_since_the_probe_is_not_found(tmp_path: Path) -> None:
    """The reactivation lists the user in notFound (erased since the probe): not_found."""
    body = Body(BodyKind.OBJECT, data_object=True, not_found=("off-1",))

    def gone(client: Meddling, _pacer: Pacer) -> None:
        client.reactivation = Answer(200, call=Call.BULK_REACTIVATE, body=body)

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", ["off-1"], meddle=gone, erase_deactivated=True
        )
        deletes = dict(server.stats.deletes_by_uid)

    row = ran.rows()["off-1"]
    assert (row.outcome, row.note) == (
        Outcome.NOT_FOUND,
        "the reactivation lists it in notFound: erased since the probe",
    )
    assert deletes == {"off-1": 2}  # the run's DELETE, and the probe's; no second DELETE


async def test_probes_hold_at_most_100_uids_and_10_kb(tmp_path: Path) -> None:
    """Many not-found UIDs, short then long: each probe holds at most 100 UIDs in a body of at
    most 10 KB, and every UID is probed once."""
    values = [f"s-{n:03d}" for n in range(250)] + [f"{n:03d}".ljust(100, "x") for n in range(150)]
    async with FakeServer(not_found_mode()) as server:
        ran = await erase(server, tmp_path / "a.jsonl", values)
        refused = server.stats.bulk_refused

    probes = [r for r in ran.records if isinstance(r, BatchSending)]
    sizes = [sum(len(uid) + 3 for uid in p.normalised_uids) + 22 for p in probes]
    assert refused == 0
    assert max(len(p.normalised_uids) for p in probes) == 100
    assert max(sizes) <= MAX_BULK_BODY
    assert sorted(uid for p in probes for uid in p.normalised_uids) == sorted(values)
    assert {row.outcome for row in ran.rows().values()} == {Outcome.NOT_FOUND}


async def test_a_halt_before_a_probe_leaves_its_rows_unanswered(tmp_path: Path) -> None:
    """The run halts before a full batch's probe leaves: its rows get no line (fate unknown to
    the audit, sent again by --resume), and the run's end probes nothing more."""
    values = [f"s-{n:03d}" for n in range(100)]
    sent = 0

    def halt_at_the_last_delete(client: Meddling, pacer: Pacer) -> None:
        real = client.client.delete_user

        async def delete_user(uid: str, *, permanent: bool) -> Answer:
            nonlocal sent
            sent += 1
            answer = await real(uid, permanent=permanent)
            if sent == len(values):
                pacer.halt()
            return answer

        client.client.delete_user = delete_user  # type: ignore[method-assign]

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", values, meddle=halt_at_the_last_delete, concurrency=1
        )
        bulk_calls = server.stats.bulk_calls

    assert (ran.rows(), ran.summary.unanswered, bulk_calls) == ({}, len(values), 0)


async def test_a_halt_before_the_reactivation_leaves_users_deactivated_and_said(
    tmp_path: Path,
) -> None:
    """The run halts after the probe and before the reactivation: nobody is reactivated, and
    the rows say deactivated and not erased, and why."""

    def halt_after_probe(client: Meddling, pacer: Pacer) -> None:
        client.after_probe = pacer.halt

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", ["off-1"], meddle=halt_after_probe,
            erase_deactivated=True,
        )  # fmt: skip
        reactivated = server.stats.reactivated

    row = ran.rows()["off-1"]
    assert (row.outcome, row.error_code, reactivated) == (
        Outcome.FAILED,
        "DEACTIVATED_NOT_ERASED",
        0,
    )
    assert row.note == "the run stopped before reactivating it to erase it"


async def test_a_failed_erasing_delete_is_failed_and_resume_erases_the_user(
    tmp_path: Path,
) -> None:
    """The DELETE after a reactivation gets no usable answer: the row is failed with a note,
    the user is active, and --resume's DELETE erases it."""
    audit = tmp_path / "a.jsonl"

    def delete_down(client: Meddling, _pacer: Pacer) -> None:
        client.erasing_delete = Answer(503, None, "unavailable", call=Call.ERASE, uid="off-1")

    async with FakeServer(not_found_mode()) as server:
        first = await erase(server, audit, ["off-1"], meddle=delete_down, erase_deactivated=True)
        between = dict(server.stats.applied)
        plan = Resume(index=load_resume_index(audit), file_hashes={}, pseudonyms=Pseudonyms(None))
        second = await erase(server, audit, ["off-1"], resume=plan, erase_deactivated=True)
        after = dict(server.stats.applied)

    row = first.rows()["off-1"]
    assert (row.outcome, row.http_status) == (Outcome.FAILED, 503)
    assert row.note == "reactivated to be erased, and its DELETE failed: a resumed run erases it"
    assert (between, after) == ({"off-1": "reactivated"}, {"off-1": "removed"})
    assert second.rows()["off-1"].outcome is Outcome.DELETED


async def test_a_fatal_answer_to_the_erasing_delete_stops_the_run(tmp_path: Path) -> None:
    """A fatal code on the DELETE after a reactivation aborts the run, as on any DELETE."""

    def revoked(client: Meddling, _pacer: Pacer) -> None:
        client.erasing_delete = Answer(
            401, "AUTH_ERR_APIKEY_NOT_FOUND", "no such key", call=Call.ERASE, uid="off-1"
        )

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", ["off-1"], meddle=revoked, erase_deactivated=True
        )

    assert (ran.summary.status, ran.summary.fatal_code) == (
        RunStatus.ABORTED,
        "AUTH_ERR_APIKEY_NOT_FOUND",
    )


async def test_a_fatal_answer_to_the_reactivation_stops_before_any_erasing_delete(
    tmp_path: Path,
) -> None:
    """A fatal code on the reactivation aborts the run: no DELETE follows, and the row stays
    without a line (the reactivation may have applied: --resume's DELETE settles it)."""
    revoked = Answer(401, "AUTH_ERR_APIKEY_NOT_FOUND", "no such key", call=Call.BULK_REACTIVATE)

    def refuse(client: Meddling, _pacer: Pacer) -> None:
        client.reactivation = revoked

    async with FakeServer(not_found_mode()) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", ["off-1"], meddle=refuse, erase_deactivated=True
        )
        deletes = dict(server.stats.deletes_by_uid)

    assert (ran.summary.status, ran.summary.fatal_code) == (
        RunStatus.ABORTED,
        "AUTH_ERR_APIKEY_NOT_FOUND",
    )
    assert (ran.rows(), ran.summary.unanswered) == ({}, 1)
    assert deletes == {"off-1": 2}  # its first DELETE and the probe: no erasing DELETE


async def test_a_held_row_is_probed_once_it_waited_hold_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A not-found row is probed while the run goes on, not only at its end: once it has
    waited ``HOLD_SECONDS`` when a later row is settled, though no batch filled."""
    monkeypatch.setattr(erasure, "HOLD_SECONDS", 0.05)
    active = [f"on-{n}" for n in range(8)]

    def slow(client: Meddling, _pacer: Pacer) -> None:
        delete = client.delete_user

        async def slow_delete(uid: str, *, permanent: bool) -> Answer:
            await asyncio.sleep(0.02)  # real time, which the run's clock follows
            return await delete(uid, permanent=permanent)

        client.delete_user = slow_delete  # type: ignore[method-assign]  # slowed for this test

    async with FakeServer(FakeConfig(api_key=API_KEY, users=frozenset(active))) as server:
        ran = await erase(
            server, tmp_path / "a.jsonl", ["gone-1", *active], meddle=slow, concurrency=1
        )

    kinds = [type(r).__name__ for r in ran.records if isinstance(r, (Probed, RowOutcome))]
    assert kinds.count("Probed") == 1
    # Probed after the few rows that took HOLD_SECONDS, well before the last row's line.
    assert 0 < kinds.index("Probed") < len(kinds) - 3, kinds
    assert ran.rows()["gone-1"].outcome is Outcome.NOT_FOUND
    assert (ran.summary.status, ran.summary.unanswered) == (RunStatus.COMPLETED, 0)
