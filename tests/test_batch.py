"""The path of one bulk call (``batch.Batcher``): scripted answers, a real audit, fake time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from helpers import run_settings, scripted_sender

from bulkdelete.api import BULK_FRAME, MAX_BULK_BODY, bulk_cost
from bulkdelete.audit import Pseudonyms, read_records
from bulkdelete.batch import Batcher, BatchSize, Fate, Member
from bulkdelete.intake import Batches
from bulkdelete.outcome import UNCONFIRMED, Answer, Body, BodyKind, Call, Listed, Outcome
from bulkdelete.records import BatchSending, Location, RunStarted, Sending
from bulkdelete.report import build_report
from bulkdelete.resume import load_resume_index
from bulkdelete.rows import Row, make_row
from bulkdelete.uidset import UidSet

Respond = Callable[[list[str]], Answer]
DOWN = Answer(503, None, "unavailable", call=Call.BULK_DEACTIVATE)
TOO_MANY = Answer(400, "ERR_BAD_REQUEST", "too many UIDs", call=Call.BULK_DEACTIVATE)


def lists(
    deactivated: Sequence[str] = (),
    already: Sequence[str] = (),
    not_found: Sequence[str] = (),
) -> Answer:
    """Return a bulk deactivation's 200 with these lists."""
    body = Body(
        BodyKind.OBJECT,
        data_object=True,
        deactivated=tuple(deactivated),
        already_deactivated=tuple(already),
        not_found=tuple(not_found),
    )
    return Answer(200, body=body, call=Call.BULK_DEACTIVATE)


def all_deactivated(uids: list[str]) -> Answer:
    return lists(deactivated=uids)


class Scripted:
    """A bulk API that answers each call with ``respond`` and notes what each call held."""

    def __init__(self, audit: Path, respond: Respond) -> None:
        self._audit = audit
        self._respond = respond
        self.calls: list[list[str]] = []
        self.lines_seen: list[int] = []  # audit lines in the file as each call left

    async def deactivate_users(self, uids: Sequence[str]) -> Answer:
        self.calls.append(list(uids))
        self.lines_seen.append(len(self._audit.read_bytes().splitlines()))
        return self._respond(list(uids))

    async def reactivate_users(self, uids: Sequence[str]) -> Answer:
        raise AssertionError("a soft batch never reactivates")

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer:
        raise AssertionError("a batch never sends a single DELETE")

    async def check_access(self) -> Answer:
        raise AssertionError("not part of a batch")


@asynccontextmanager
async def batcher_for(
    tmp_path: Path,
    respond: Respond,
    *,
    ceiling: int = 100,
    key: str | None = None,
    lost: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Batcher, Scripted]]:
    """Yield a batcher over a scripted API, writing to a fresh audit, on a fake clock."""
    audit = tmp_path / "a.jsonl"
    api = Scripted(audit, respond)
    async with scripted_sender(audit, api, key=key, lost=lost) as sender:
        yield Batcher(sender, api, BatchSize(ceiling)), api


def members(*uids: str) -> list[Member]:
    return [Member(uid, Location("in", n + 2)) for n, uid in enumerate(uids)]


def outcomes(batcher: Batcher, fates: Sequence[Fate | None], uids: Sequence[str]) -> list[str]:
    return [
        "unsent" if fate is None else batcher.row_result(fate, uid).outcome.value
        for fate, uid in zip(fates, uids, strict=True)
    ]


def intents(tmp_path: Path) -> list[BatchSending]:
    return [r for _, r in read_records(tmp_path / "a.jsonl") if isinstance(r, BatchSending)]


async def test_one_intent_line_names_the_batch_before_its_call_leaves(tmp_path: Path) -> None:
    """The batch_sending line (UIDs, rows) is in the file as the call leaves, once for retries;
    the answer's lists give each UID its row's outcome, in order; one call of the budget."""
    answers = iter([DOWN, lists(deactivated=["ann"], already=["bob"], not_found=["cy"])])
    async with batcher_for(tmp_path, lambda _uids: next(answers)) as (batcher, api):
        sent = await batcher.send(members("ann", "bob", "cy"))
    assert (api.lines_seen, batcher.sender.tally.requests) == ([1, 1], 2)
    [intent] = intents(tmp_path)
    assert (intent.normalised_uids, intent.sources, intent.call) == (
        ("ann", "bob", "cy"),
        (Location("in", 2), Location("in", 3), Location("in", 4)),
        Call.BULK_DEACTIVATE,
    )
    expected = ["deleted", "already_deactivated", "not_found"]
    assert expected == outcomes(batcher, sent.fates, ["ann", "bob", "cy"])
    assert sent.fatal is None


async def test_the_intent_names_uids_by_pseudonym_under_uid_hash(tmp_path: Path) -> None:
    """Under uid_hash the intent line holds pseudonyms, and a resume reads them as in flight."""
    async with batcher_for(tmp_path, lambda _u: DOWN, key="k" * 32) as (batcher, _api):
        await batcher.send(members("ann"))
    named = Pseudonyms(b"k" * 32)
    [intent] = intents(tmp_path)
    assert intent.normalised_uids == (named.of("ann"),)
    assert "ann" not in (tmp_path / "a.jsonl").read_text()


async def test_uids_a_200_leaves_out_are_sent_again_then_failed(tmp_path: Path) -> None:
    """A 200 that does not list bob: bob alone is sent again (no new intent line); when no
    answer ever lists him, he fails as unconfirmed, never deleted."""
    async with batcher_for(tmp_path, lambda uids: lists(deactivated=["ann"])) as (batcher, api):
        sent = await batcher.send(members("ann", "bob"))
    bob = sent.fates[1]
    assert bob is not None
    result = batcher.row_result(bob, "bob")
    assert (api.calls, len(intents(tmp_path))) == ([["ann", "bob"], ["bob"], ["bob"]], 1)
    assert (result.outcome, result.error_code, result.attempts) == (Outcome.FAILED, UNCONFIRMED, 3)
    assert outcomes(batcher, sent.fates[:1], ["ann"]) == ["deleted"]


async def test_a_resent_uid_found_already_deactivated_says_this_run_did_it(tmp_path: Path) -> None:
    """The first 200 missed bob; the re-send lists him already deactivated: the note says an
    earlier request of this run probably did it."""
    answers = iter([lists(deactivated=["ann"]), lists(already=["bob"])])
    async with batcher_for(tmp_path, lambda _u: next(answers)) as (batcher, _api):
        sent = await batcher.send(members("ann", "bob"))
    bob = sent.fates[1]
    assert bob is not None
    result = batcher.row_result(bob, "bob")
    assert (result.outcome, result.note) == (
        Outcome.ALREADY_DEACTIVATED,
        "an earlier request of this run probably deactivated it",
    )


async def test_a_batch_refused_for_its_size_is_halved_and_the_size_learned(
    tmp_path: Path,
) -> None:
    """A server that takes 2 UIDs a call: 5 are sent as 5, then halves until accepted, and the
    next batch goes out in pieces of 2 at once, with no refusal."""

    def respond(uids: list[str]) -> Answer:
        return TOO_MANY if len(uids) > 2 else all_deactivated(uids)

    async with batcher_for(tmp_path, respond) as (batcher, api):
        first = await batcher.send(members("a", "b", "c", "d", "e"))
        api.calls.clear()
        second = await batcher.send(members("f", "g", "h"))
    assert outcomes(batcher, first.fates, "abcde") == ["deleted"] * 5
    assert outcomes(batcher, second.fates, "fgh") == ["deleted"] * 3
    assert (api.calls, batcher.size.ceiling, batcher.size.accepted) == ([["f", "g"], ["h"]], 2, 2)


async def test_one_refused_uid_is_isolated_and_fails_with_its_code(tmp_path: Path) -> None:
    """A call holding "bad" is refused: halves isolate it; it fails with the code, the others
    are deleted, and a size already accepted is not lowered."""
    bad = Answer(400, "ERR_BAD_REQUEST", "bad uid", call=Call.BULK_DEACTIVATE)

    def respond(uids: list[str]) -> Answer:
        return bad if "bad" in uids else all_deactivated(uids)

    async with batcher_for(tmp_path, respond) as (batcher, _api):
        await batcher.send(members("a", "b", "c", "d"))
        sent = await batcher.send(members("a", "b", "bad", "d"))
    assert outcomes(batcher, sent.fates, ["a", "b", "bad", "d"]) == [
        "deleted",
        "deleted",
        "failed",
        "deleted",
    ]
    fate = sent.fates[2]
    assert fate is not None
    assert batcher.row_result(fate, "bad").error_code == "ERR_BAD_REQUEST"
    assert (batcher.size.ceiling, batcher.size.refused) == (100, 2)


async def test_a_fatal_answer_stops_the_batch(tmp_path: Path) -> None:
    """A revoked key: the piece's UIDs fail with it, it comes back as fatal, and the batch's
    next piece is never sent (no intent for it either)."""
    revoked = Answer(404, "AUTH_ERR_APIKEY_NOT_FOUND", "bad key", call=Call.BULK_DEACTIVATE)
    async with batcher_for(tmp_path, lambda _u: revoked, ceiling=2) as (batcher, api):
        sent = await batcher.send(members("a", "b", "c"))
    assert (sent.fatal, api.calls) == (revoked, [["a", "b"]])
    assert outcomes(batcher, sent.fates, "abc") == ["failed", "failed", "unsent"]
    assert [i.normalised_uids for i in intents(tmp_path)] == [("a", "b")]


async def test_a_halted_run_sends_nothing_and_writes_no_intent(tmp_path: Path) -> None:
    """Halted before the batch: every UID comes back unsent, with no intent line."""
    async with batcher_for(tmp_path, all_deactivated) as (batcher, api):
        batcher.sender.pacer.halt()
        sent = await batcher.send(members("a", "b"))
    assert (sent.fates, api.calls, intents(tmp_path)) == ([None, None], [], [])


async def test_giving_up_on_a_batch_fails_each_uid_and_counts_them(tmp_path: Path) -> None:
    """Unavailable three times: each UID fails with a note, counts as retried, none stays
    unanswered; the tally counts three calls."""
    async with batcher_for(tmp_path, lambda _u: DOWN) as (batcher, _api):
        sent = await batcher.send(members("a", "b"))
    tally = batcher.sender.tally
    notes = [batcher.row_result(f, "x").note for f in sent.fates if f is not None]
    assert (tally.requests, tally.retried, tally.unanswered) == (3, 2, 0)
    assert all(note and note.startswith("gave up after 3 attempts") for note in notes)


async def test_an_intent_line_is_a_sending_per_uid_to_readers(tmp_path: Path) -> None:
    """Killed after the intent (no row lines): a resume index takes each UID as sent by that
    run, with no answer."""
    async with batcher_for(tmp_path, lambda _u: DOWN) as (batcher, _api):
        await batcher.send(members("a", "b"))
    [intent] = intents(tmp_path)
    each = [(s.normalised_uid, s.source) for s in intent.each()]
    assert each == [("a", Location("in", 2)), ("b", Location("in", 3))]
    assert isinstance(next(intent.each()), Sending)
    assert load_resume_index(tmp_path / "a.jsonl").unknown == {"a": "run-2", "b": "run-2"}


async def test_a_lost_answer_of_an_earlier_run_is_named(tmp_path: Path) -> None:
    """Resumed: a UID the killed run sent, found already deactivated, names that run."""
    respond = lambda uids: lists(already=uids)  # noqa: E731  (one line, read once)
    async with batcher_for(tmp_path, respond, lost={"ann": "run-1"}) as (batcher, _api):
        sent = await batcher.send(members("ann"))
    fate = sent.fates[0]
    assert fate is not None
    note = batcher.row_result(fate, "ann").note
    assert note == "run run-1 sent it and lost the answer; it probably deactivated it"
    assert fate.listed is Listed.ALREADY


async def test_a_batch_never_holds_a_body_over_10_kb() -> None:
    """Maximal UIDs (100 characters): a batch of up to 1000 stops at the 10 KB body, the row
    that would overflow it starts the next one, and the end of the queue ends the batches."""
    queue: asyncio.Queue[Row | None] = asyncio.Queue()
    seen = UidSet()
    for n in range(150):
        queue.put_nowait(make_row(f"in:{n}", f"{n:03d}" + "u" * 97, seen))
    queue.put_nowait(None)
    batches = Batches(queue, 1000)
    sizes = []
    while (batch := await batches.next()) is not None:
        uids = [row.uid or "" for row in batch]
        assert BULK_FRAME + sum(bulk_cost(uid) for uid in uids) <= MAX_BULK_BODY
        sizes.append(len(batch))
    assert sizes == [99, 51]


async def test_a_killed_batched_run_counts_its_calls_not_its_rows(tmp_path: Path) -> None:
    """report on a batched run killed with a batch in flight: 2 requests (its intent lines), not
    3 (its answered rows' attempts), and the UID in flight named unknown."""
    async with batcher_for(tmp_path, all_deactivated) as (batcher, _api):
        batcher.sender.audit.write(
            RunStarted(
                run_id="run-2", version="0", settings=run_settings(), repaired_torn_tail_bytes=0
            )
        )
        rows = [make_row(f"in:{n}", uid, UidSet()) for n, uid in enumerate(["a", "b", "c"], 1)]
        await batcher.send_rows(rows)
        in_flight = BatchSending(
            run_id="run-2",
            call=Call.BULK_DEACTIVATE,
            normalised_uids=("d",),
            sources=(Location("in", 4),),
        )
        batcher.sender.audit.write(in_flight)  # and killed
    report = build_report([tmp_path / "a.jsonl"])
    [run] = report.runs
    assert (run.status, run.requests, report.unknown) == ("killed", 2, ("d",))
