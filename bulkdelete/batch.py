"""The path of one bulk call: a batch of UIDs, one turn of the pacer, one intent line, one call.

``Batcher.send(members)`` takes a batch (``Member``: a normalised UID, the row it came from, its
reference as the audit names it) and returns a ``BatchSent``: per member, in order, its ``Fate``
(or None: never sent), and the answer that must stop the run, if any. The contract:

- **Pacing.** Every request is one ``pacer.turn()`` (a batch is one call of the budget), sent
  and retried by ``retry.call_with_retries`` with the run's policy, exactly as a single DELETE:
  transient answers (429, 5xx, no answer, an unproven 2xx) are retried within the policy's
  bounds; when they run out, the UIDs fail with the last answer (``send.retry_note`` says why).
- **Intent.** Before the first request naming a UID leaves, one ``records.BatchSending`` line
  (the call, the UIDs as the audit names them, pseudonyms under ``uid_hash``, their rows and
  references) is written through to the kernel. Retries, halves and re-sends of UIDs already
  named write no new line. A reader takes a UID with an intent and no row line as in flight.
- **Size.** A batch goes out in pieces no larger than ``BatchSize.ceiling``. A piece refused with
  a 4xx that is not fatal is split in halves, each sent (and split) in turn, until the cause is
  isolated: a lone UID refused fails with the answer's code. A refusal of a piece larger than
  any accepted so far may be the size's doing: it lowers the ceiling to half the piece (never
  below the largest accepted) for the rest of the run. One no larger than a piece already
  accepted is its UIDs' doing and lowers nothing. Pieces larger than any accepted are sent
  one at a time (``BatchSize.learning``), so that only the first batches learn by refusal.
- **Lists.** A confirmed 2xx (``data`` an object) places each UID it was sent in a list
  (``outcome.listed``). UIDs it does not account for are sent again, in a piece of their own
  flagged as possibly applied (both calls are idempotent), while ``policy.max_attempts`` allows;
  then they fail (``outcome.batch_result`` of ``Listed.MISSING``), never ``deleted``.
- **Fatal.** A fatal answer (``outcome.FATAL_CODES``, TLS) fails its piece's UIDs with it and
  comes back in ``BatchSent.fatal``; no later piece of the batch is sent. The caller stops the
  run, as for a single DELETE.
- **Halt.** Once the pacer is halted nothing more is sent: a UID whose intent was never written
  comes back None (unsent, no row line: a resumed run sends it); one whose intent was written
  (a half or re-send that never left) fails with its last answer and a note.
- **Tally.** ``requests`` counts calls on the wire, aiohttp's own resends included; UIDs count in
  ``unanswered`` from their intent to their fate, in ``retrying`` while their piece waits to be
  retried, and in ``retried`` when a request naming them was retried or re-sent (a split after
  a refusal is not a retry, though the row's ``attempts`` counts every request naming it).

What a ``Fate`` means is the caller's: ``Batcher.row_result`` is a soft run's row (deleted,
already deactivated, not found, failed); a probe or a reactivation reads ``Fate.listed``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from bulkdelete.outcome import (
    Answer,
    Call,
    Listed,
    Outcome,
    Result,
    Verdict,
    batch_result,
    final_result,
    listed,
)
from bulkdelete.records import BatchSending, Location
from bulkdelete.retry import Attempted
from bulkdelete.rows import Row
from bulkdelete.send import Api, Sender, retry_note

log = structlog.get_logger("bulkdelete")
_STOPPED = "the run stopped before its next request for this UID"


@dataclass(frozen=True, slots=True)
class Member:
    """One UID of a batch: normalised, where its row is, its reference as the audit names it."""

    uid: str
    where: Location
    ref: str | None = None


@dataclass(slots=True)
class Fate:
    """What one UID of a bulk call came to.

    ``listed`` is where the last confirmed answer placed it; ``Listed.MISSING`` when none did,
    and then ``failure`` is the row's failed result (refused, gave up, fatal, unaccounted for).
    ``answer`` is the last answer that named it, ``attempts`` the requests that named it.
    """

    listed: Listed
    answer: Answer
    attempts: int
    ambiguous_earlier: bool = False  # an earlier request naming it may have applied
    failure: Result | None = None


@dataclass(slots=True)
class BatchSent:
    """A batch's fates, in the order of its members (None: never sent), and a fatal answer."""

    fates: list[Fate | None]
    fatal: Answer | None = None


@dataclass(slots=True)
class BatchSize:
    """The largest piece a run sends, learned from refusals: see the module docstring."""

    ceiling: int
    accepted: int = 0  # the largest piece a confirmed answer accepted
    refused: int = 0  # calls refused with a 4xx that is not fatal
    # Held while a piece larger than any accepted is sent: calls of unproven sizes go one at a
    # time, so a run's first refusal teaches every batch before it too is sent and refused.
    learning: asyncio.Lock = field(default_factory=asyncio.Lock)

    def refuse(self, size: int) -> None:
        """Learn from a piece of ``size`` UIDs refused with a 4xx that is not fatal."""
        self.refused += 1
        if size > self.accepted:
            lowered = max(self.accepted, (size + 1) // 2)
            if lowered < self.ceiling:
                log.info("batch_size_lowered", refused=size, ceiling=lowered)
                self.ceiling = lowered

    def accept(self, size: int) -> None:
        """Learn from a piece of ``size`` UIDs that a confirmed answer accepted."""
        self.accepted = max(self.accepted, size)


@dataclass(slots=True)
class _Track:
    """One member as its batch goes: requests that named it, its last answer, its fate."""

    member: Member
    attempts: int = 0
    retried: bool = False  # a request naming it was retried, or it was re-sent
    ambiguous: bool = False
    announced: bool = False
    answer: Answer | None = None
    fate: Fate | None = None

    def settle(self, state: Listed, answer: Answer, failure: Result | None = None) -> None:
        self.fate = Fate(state, answer, self.attempts, self.ambiguous, failure)


@dataclass(frozen=True, slots=True)
class Batcher:
    """Sends batches of one bulk ``call`` through a run's ``Sender``: see the module docstring."""

    sender: Sender
    api: Api
    size: BatchSize
    call: Call = Call.BULK_DEACTIVATE

    async def send(self, members: Sequence[Member]) -> BatchSent:
        """Send ``members`` in as few calls as the ceiling allows; see the module docstring."""
        tracks = [_Track(member) for member in members]
        pieces = [tracks]
        fatal: Answer | None = None
        while pieces and fatal is None and not self.sender.pacer.halted:
            piece = pieces.pop(0)
            ceiling = self.size.ceiling
            if len(piece) > ceiling:
                pieces[:0] = [piece[i : i + ceiling] for i in range(0, len(piece), ceiling)]
                continue
            if len(piece) > self.size.accepted:  # a size not proven yet: one such piece at a time
                async with self.size.learning:
                    if len(piece) > self.size.ceiling:  # lowered while this piece waited
                        pieces.insert(0, piece)
                        continue
                    attempted = await self._request(piece)
            else:
                attempted = await self._request(piece)
            if attempted is None:
                break  # halted before it left: the loop's ending settles what is left
            fatal = self._settle(piece, attempted, pieces)
        tally = self.sender.tally
        for track in tracks:
            if track.fate is None and track.announced and track.answer is not None:
                stopped = final_result(track.answer, attempts=track.attempts)
                failed = dataclasses.replace(stopped, outcome=Outcome.FAILED, note=_STOPPED)
                track.settle(Listed.MISSING, track.answer, failed)
            tally.unanswered -= track.announced
            tally.retried += track.retried
        return BatchSent([track.fate for track in tracks], fatal)

    def _settle(
        self, piece: list[_Track], attempted: Attempted, pieces: list[list[_Track]]
    ) -> Answer | None:
        """Give the piece's UIDs their fates, or queue what to send next; return a fatal answer."""
        answer, verdict = attempted.answer, attempted.verdict
        for track in piece:
            track.attempts += attempted.attempts
            track.retried |= attempted.attempts > 1
            track.ambiguous |= attempted.ambiguous_earlier
            track.answer = answer
        if verdict is Verdict.DELETED:  # confirmed: the lists say what became of each UID
            self.size.accept(len(piece))
            missing = []
            for track, state in zip(
                piece, listed(answer, [t.member.uid for t in piece]), strict=True
            ):
                if state is Listed.MISSING:
                    missing.append(track)
                else:
                    track.settle(state, answer)
            self._resend_or_fail(missing, answer, pieces)
            return None
        if verdict in (Verdict.FATAL, Verdict.RETRY) or len(piece) == 1:
            for track in piece:
                result = final_result(answer, attempts=track.attempts, verdict=verdict)
                if verdict is Verdict.NOT_FOUND:  # no UID's answer: the call's, refused
                    result = dataclasses.replace(result, outcome=Outcome.FAILED)
                note = retry_note(attempted, result)
                failed = result if note is None else dataclasses.replace(result, note=note)
                track.settle(Listed.MISSING, answer, failed)
            return answer if verdict is Verdict.FATAL else None
        # Refused, not fatal: its size or one of its UIDs. Halves isolate the cause.
        self.size.refuse(len(piece))
        log.debug(
            "batch_refused",
            uids=len(piece),
            http_status=answer.http_status,
            error_code=answer.error_code,
        )
        half = (len(piece) + 1) // 2
        pieces[:0] = [piece[:half], piece[half:]]
        return None

    def _resend_or_fail(
        self, missing: list[_Track], answer: Answer, pieces: list[list[_Track]]
    ) -> None:
        """Send the UIDs a confirmed answer left out once more (it may have applied), or fail
        them once the policy's attempts are spent."""
        again = []
        for track in missing:
            track.ambiguous = True
            if track.attempts < self.sender.policy.max_attempts:
                track.retried = True
                again.append(track)
            else:
                failed = batch_result(Listed.MISSING, answer, attempts=track.attempts)
                track.settle(Listed.MISSING, answer, failed)
        if again:
            pieces.insert(0, again)

    async def _request(self, piece: list[_Track]) -> Attempted | None:
        """Send one piece: its intent line first, then the call with retries."""
        sender = self.sender
        tally = sender.tally
        uids = [track.member.uid for track in piece]
        api = self.api
        send = api.deactivate_users if self.call is Call.BULK_DEACTIVATE else api.reactivate_users
        first = True

        async def attempt() -> Answer:
            nonlocal first
            if first:
                self._announce([track for track in piece if not track.announced])
                first = False
            tally.requests += 1
            return await send(uids)

        attempted = await sender.retried(
            attempt, uids=len(piece), event="batch_retry_scheduled", batch=len(piece)
        )
        if attempted is not None:
            tally.requests += attempted.sends - attempted.attempts  # aiohttp's own resends
        return attempted

    def _announce(self, fresh: list[_Track]) -> None:
        """Write the intent line of UIDs about to be named for the first time."""
        if not fresh:
            return
        sender = self.sender
        named = sender.pseudonyms
        refs = tuple(track.member.ref for track in fresh)
        sender.audit.write_through(
            BatchSending(
                run_id=sender.run_id,
                call=self.call,
                normalised_uids=tuple(named.of(track.member.uid) for track in fresh),
                sources=tuple(track.member.where for track in fresh),
                refs=refs if any(ref is not None for ref in refs) else None,
            )
        )
        for track in fresh:
            track.announced = True
        sender.tally.unanswered += len(fresh)

    async def send_rows(self, rows: Sequence[Row]) -> Answer | None:
        """Send a soft run's batch of valid rows and audit each row sent; return the answer
        that must stop the run, if any. Rows never sent get no line: the run counts them unsent.
        """
        sender = self.sender
        members = [
            Member(row.uid or "", Location.parse(row.source), sender.named_ref(row)) for row in rows
        ]
        sent = await self.send(members)
        for row, member, fate in zip(rows, members, sent.fates, strict=True):
            if fate is not None:
                sender.record(row, self.row_result(fate, member.uid), member.where)
        return sent.fatal

    def row_result(self, fate: Fate, uid: str) -> Result:
        """Return a soft run's row result for a UID's fate (``uid`` normalised).

        A UID an earlier run sent and never heard back of, found already deactivated now, was
        most likely deactivated by that run: the note says so.
        """
        if fate.failure is not None:
            return fate.failure
        result = batch_result(
            fate.listed,
            fate.answer,
            attempts=fate.attempts,
            ambiguous_earlier=fate.ambiguous_earlier,
        )
        lost = self.sender.lost
        earlier_run = lost.get(self.sender.pseudonyms.of(uid)) if lost else None
        if earlier_run and result.note is None and result.outcome is Outcome.ALREADY_DEACTIVATED:
            note = f"run {earlier_run} sent it and lost the answer; it probably deactivated it"
            return dataclasses.replace(result, note=note)
        return result
