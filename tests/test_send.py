"""The path of one call (``send.Sender``), with scripted answers, a real audit and fake time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from helpers import scripted_sender

from bulkdelete.audit import read_records
from bulkdelete.outcome import CONNECTION, Answer, Body, BodyKind, Call, Outcome
from bulkdelete.records import Location, Sending
from bulkdelete.send import API_UNAVAILABLE, Sender, Sent

WHERE = Location("in", 7)
GONE = Answer(404, "ERR_UID_NOT_FOUND", "The UID ann does not exist.")
DOWN = Answer(503, None, "unavailable")


class Scripted:
    """An API that gives the scripted answers in turn and notes the audit's lines at each call."""

    def __init__(self, audit: Path, answers: Iterable[Answer]) -> None:
        self._audit = audit
        self._answers = list(answers)
        self.lines_seen: list[int] = []  # audit lines in the file as each request left

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer:
        self.lines_seen.append(len(self._audit.read_bytes().splitlines()))
        return self._answers.pop(0)

    async def deactivate_users(self, uids: Sequence[str]) -> Answer:
        raise AssertionError("a single UID's path never sends a bulk call")

    async def reactivate_users(self, uids: Sequence[str]) -> Answer:
        raise AssertionError("a single UID's path never sends a bulk call")

    async def check_access(self) -> Answer:
        return self._answers.pop(0)


@asynccontextmanager
async def sender_for(
    tmp_path: Path, answers: Iterable[Answer], *, lost: dict[str, str] | None = None
) -> AsyncIterator[tuple[Sender, Scripted]]:
    """Yield a sender over scripted answers, writing to a fresh audit, on a fake clock."""
    audit = tmp_path / "a.jsonl"
    api = Scripted(audit, answers)
    async with scripted_sender(audit, api, lost=lost) as sender:
        yield sender, api


async def test_the_intent_is_in_the_audit_before_the_request_leaves(tmp_path: Path) -> None:
    """The sending line is in the file when the DELETE is made, and only once for retries."""
    async with sender_for(tmp_path, [DOWN, GONE]) as (sender, api):
        await sender.delete("ann", WHERE)
    sending = [r for _, r in read_records(tmp_path / "a.jsonl") if isinstance(r, Sending)]
    expected = ([1, 1], [("ann", WHERE)])
    assert expected == (api.lines_seen, [(r.normalised_uid, r.source) for r in sending])


async def test_a_not_found_after_an_earlier_run_lost_its_answer_says_so(tmp_path: Path) -> None:
    """A UID an earlier run sent without hearing back: its not-found names that run."""
    async with sender_for(tmp_path, [GONE], lost={"ann": "run-1"}) as (sender, _):
        sent = await sender.delete("ann", WHERE)
    assert sent is not None
    expected = (
        Outcome.NOT_FOUND,
        "run run-1 sent a request whose answer was lost; it probably deleted it",
    )
    assert expected == (sent.result.outcome, sent.result.note)


async def test_giving_up_says_after_how_many_attempts(tmp_path: Path) -> None:
    """Three unavailable answers with three attempts allowed: failed, and the note says why;
    the tally counts one retried UID and three requests."""
    async with sender_for(tmp_path, [DOWN, DOWN, DOWN]) as (sender, _):
        sent = await sender.delete("ann", WHERE)
    assert sent is not None
    result, tally = sent.result, sender.tally
    assert (result.outcome, result.attempts, tally.retried, tally.requests) == (
        Outcome.FAILED,
        3,
        1,
        3,
    )
    assert result.note is not None
    assert result.note.startswith("gave up after 3 attempts and ")


async def test_a_fatal_answer_comes_back_as_the_reason_to_stop(tmp_path: Path) -> None:
    """A revoked key: the row fails and ``fatal`` holds the answer that must stop the run."""
    revoked = Answer(404, "AUTH_ERR_APIKEY_NOT_FOUND", "bad key")
    async with sender_for(tmp_path, [revoked]) as (sender, _):
        sent = await sender.delete("ann", WHERE)
    assert sent is not None
    expected = Sent(result=sent.result, fatal=revoked)
    assert (expected, sent.result.outcome) == (sent, Outcome.FAILED)


async def test_a_credential_check_without_a_usable_answer_stops_the_run(tmp_path: Path) -> None:
    """No answer to the check within its attempts: API_UNAVAILABLE, nothing deleted; a list
    of users lets the run go on."""
    listing = Answer(200, body=Body(BodyKind.OBJECT, listing=True), call=Call.CHECK)
    lost = Answer(None, CONNECTION, "refused", call=Call.CHECK)
    async with sender_for(tmp_path, [lost, lost, lost]) as (sender, _):
        refused = await sender.check_access()
    async with sender_for(tmp_path, [listing]) as (sender, _):
        allowed = await sender.check_access()
    assert refused is not None
    expected = (API_UNAVAILABLE, None)
    assert expected == (refused.error_code, allowed)
