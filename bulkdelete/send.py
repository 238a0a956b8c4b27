"""The path of one call: wait for the pacer, announce it in the audit, call, classify, retry.

A ``Sender`` holds what every call of a run goes through: the API client, the pacer and retry
policy (``retry.call_with_retries`` paces every attempt and shows the pacer every answer), the
audit and the tally. ``delete`` takes one UID from its first turn to its ``Sent``, and
``record`` audits what a row came to (sent or not); ``check_access`` is the credential check
before any DELETE. They hand back values and leave stopping the run to the caller. A batch
path sits beside it (``batch.Batcher``): one turn, one intent line per batch, one call, a fate
per UID, recorded here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from bulkdelete.audit import AuditWriter, Pseudonyms
from bulkdelete.errors import AuditError
from bulkdelete.outcome import Answer, Outcome, Result, Verdict, classify, fatal_cause, final_result
from bulkdelete.pacing import Pacer
from bulkdelete.records import Location, RowOutcome, Sending
from bulkdelete.retry import Attempted, RetryPolicy, call_with_retries
from bulkdelete.rows import Row
from bulkdelete.tally import Tally

API_UNAVAILABLE: Final = "API_UNAVAILABLE"  # the fatal code of an API that gave no usable answer

log = structlog.get_logger("bulkdelete")


class Api(Protocol):
    """The calls a run makes (``api.Client`` makes them over HTTP); none raises for I/O."""

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer: ...

    async def deactivate_users(self, uids: Sequence[str]) -> Answer: ...

    async def reactivate_users(self, uids: Sequence[str]) -> Answer: ...

    async def check_access(self) -> Answer: ...


@dataclass(slots=True)  # not frozen, as one is made per UID: see ``pacing.Observation``
class Sent:
    """What one UID's call came to: its result, and the answer that must stop the run, if any."""

    result: Result
    fatal: Answer | None = None


def retry_note(attempted: Attempted, result: Result) -> str | None:
    """Return why retries ended, where the result alone would not say: the run stopped before
    the next one, or the policy's bounds ran out (a failure the last answer called transient).
    """
    if attempted.abandoned:
        return "the run stopped before its next retry"
    if result.outcome is Outcome.FAILED and attempted.verdict is Verdict.RETRY:
        tries = "1 attempt" if attempted.attempts == 1 else f"{attempted.attempts} attempts"
        return (
            f"gave up after {tries} and {attempted.waited:.0f} s of waits "
            "(--max-attempts, --max-retry-time)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Sender:
    """What every call of one run goes through; see the module docstring."""

    api: Api
    pacer: Pacer
    policy: RetryPolicy
    audit: AuditWriter
    tally: Tally
    run_id: str
    permanent: bool
    pseudonyms: Pseudonyms
    # UIDs (as the audit names them) that an earlier run sent and never heard back of, with
    # that run's id: a not-found now most likely means that run deleted them.
    lost: Mapping[str, str] | None = None

    def named_ref(self, row: Row) -> str | None:
        """Return the row's request reference as the audit names it.

        A reference may quote the UID (a ticket "erase alice"): under pseudonyms it is named so.
        """
        return self.pseudonyms.scrub(row.ref, row.raw, row.uid)

    async def delete(self, uid: str, where: Location, *, ref: str | None = None) -> Sent | None:
        """Delete one normalised UID read at ``where`` (for the request ``ref``, as the audit
        names it); None when the run halted before its first request, so nothing was sent.

        Its ``sending`` line reaches the kernel before its first request leaves, so after a
        crash the audit names every UID whose fate is unknown.
        """
        tally, audit = self.tally, self.audit
        announced = False

        async def attempt() -> Answer:
            nonlocal announced
            if not announced:
                audit.write_through(
                    Sending(
                        run_id=self.run_id,
                        normalised_uid=self.pseudonyms.of(uid),
                        source=where,
                        ref=ref,
                    )
                )
                announced = True
                tally.unanswered += 1
            tally.requests += 1
            return await self.api.delete_user(uid, permanent=self.permanent)

        attempted = await self.retried(attempt, uids=1, event="retry_scheduled", uid=uid)
        # Not reached when the stop grace ran out mid-request: the UID stays unanswered.
        tally.unanswered -= announced
        if attempted is None:
            return None
        tally.requests += attempted.sends - attempted.attempts  # aiohttp's own resends
        if attempted.attempts > 1:
            tally.retried += 1
        verdict = attempted.verdict
        fatal = attempted.answer if verdict is Verdict.FATAL else None
        return Sent(self._result(uid, attempted, verdict), fatal)

    def retried(
        self, attempt: Callable[[], Awaitable[Answer]], *, uids: int, event: str, **named: object
    ) -> Coroutine[Any, Any, Attempted | None]:
        """Return ``call_with_retries`` of ``attempt`` through the pacer, counting its ``uids``
        in ``tally.retrying`` while they wait for a retry, and logging each retry as ``event``
        with ``named``. (A coroutine handed over, not awaited here: no frame per call.)"""
        tally = self.tally

        def on_retry(answer: Answer, attempt_number: int, sleep: float) -> None:
            tally.retrying += uids
            log.debug(
                event,
                **named,
                attempt=attempt_number,
                http_status=answer.http_status,
                error_code=answer.error_code,
                sleep=round(sleep, 3),
            )

        def on_resume() -> None:
            tally.retrying -= uids

        return call_with_retries(
            attempt, policy=self.policy, pacer=self.pacer, on_retry=on_retry, on_resume=on_resume
        )

    def _result(self, uid: str, attempted: Attempted, verdict: Verdict) -> Result:
        """Return the row's result, with a note where the answer alone would mislead."""
        result = final_result(
            attempted.answer,
            attempts=attempted.attempts,
            ambiguous_earlier=attempted.ambiguous_earlier,
            verdict=verdict,
        )
        earlier_run = self.lost.get(self.pseudonyms.of(uid)) if self.lost else None
        if result.outcome is Outcome.NOT_FOUND and earlier_run and result.note is None:
            lost = f"run {earlier_run} sent a request whose answer was lost; it probably deleted it"
            return dataclasses.replace(result, note=lost)
        note = retry_note(attempted, result)
        return result if note is None else dataclasses.replace(result, note=note)

    def record(self, row: Row, result: Result, where: Location) -> None:
        """Audit a row's outcome and count it; ``where`` is its source, parsed once."""
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
                    permanent=self.permanent,
                    outcome=result.outcome,
                    http_status=result.http_status,
                    error_code=result.error_code,
                    message=result.message,
                    attempts=result.attempts,
                    source=where,
                    reason=row.reason,
                    note=result.note,
                    ref=self.named_ref(row),
                )
            )
        except AuditError:
            if result.attempts:  # sent, and its outcome never reached the audit: fate unknown
                self.tally.unanswered += 1
            raise
        self.tally.settle(result)

    async def check_access(self) -> Answer | None:
        """Check the key, the app and the base URL with one harmless read before any DELETE;
        return why the run must stop, or None.

        Anything but CometChat's list of users (a 404 page, a redirect, HTML) is fatal: the
        DELETEs would go to the same wrong place.
        """
        attempted = await call_with_retries(
            self.api.check_access, policy=self.policy, pacer=self.pacer
        )
        if attempted is None:
            return None
        self.tally.requests += attempted.attempts
        answer = attempted.answer
        verdict = classify(answer)
        if verdict is Verdict.FATAL:
            return fatal_cause(answer)
        if verdict is Verdict.RETRY and not attempted.abandoned:
            # Retries ran out without one usable answer: deleting would only fail the same way.
            reason = answer.error_code or f"HTTP {answer.http_status}"
            return Answer(
                answer.http_status,
                API_UNAVAILABLE,
                f"the credential check got no usable answer ({reason}); nothing was deleted",
            )
        return None
