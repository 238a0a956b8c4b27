"""The retry policy: which answers are retried, how long to wait, and when to give up.

Retries are decided on answers (``outcome.classify``), never on exceptions, so a
``CancelledError`` or a programming error is never retried. Each UID gets its own
``AsyncRetrying``; sharing one across tasks corrupts its state.

Every answer is shown to the run's ``Pacer`` first. A 429 pauses the whole run there, so the
retry itself waits only for that pause. That wait, like every wait between two attempts, counts
against the UID's ``max_time``: a UID gives up rather than start a wait its time cannot cover,
so no header holds it beyond its bound. While the pacer sees an outage, the run backs off as a
whole and the attempts a UID makes do not count against its own limits: the run's outage bound
(``max_outage``) decides instead.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from bulkdelete.outcome import Answer, Verdict, classify, may_have_applied
from bulkdelete.pacing import HALT_CHECK, Observation, Pacer
from bulkdelete.settings import DEFAULTS

TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one UID: attempts, a time bound, and the backoff between attempts.

    ``max_time`` bounds the seconds spent waiting between attempts (backoff and the run's pauses).
    ``sleep`` and ``clock`` are injected so tests can run retries without waiting.
    """

    max_attempts: int = DEFAULTS.max_attempts
    max_time: float = DEFAULTS.max_retry_time
    backoff_multiplier: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True, slots=True)
class Attempted:
    """The last answer for one UID and how many attempts and wire sends it took."""

    answer: Answer
    attempts: int
    sends: int
    ambiguous_earlier: bool  # an earlier attempt may have reached the server and deleted the user
    abandoned: bool = False  # the run halted before a retry the policy still allowed
    waited: float = 0.0  # seconds spent between attempts that counted against ``max_time``


OnRetry = Callable[[Answer, int, float], None]


def observation(answer: Answer, *, round_trip: float | None = None, ticket: int = 0) -> Observation:
    """Return what the pacer should learn from an answer to the request ``turn`` numbered."""
    status, rate = answer.http_status, answer.rate
    return Observation(
        throttled=status == TOO_MANY_REQUESTS,
        unavailable=(status is None and classify(answer) is Verdict.RETRY)
        or (status is not None and status >= _SERVER_ERROR),
        retry_after=rate.retry_after,
        limit=rate.limit,
        remaining=rate.remaining,
        reset_at=rate.reset_at,
        server_date=rate.server_date,
        round_trip=round_trip if status is not None else None,
        ticket=ticket,
    )


def _is_retryable(answer: Answer) -> bool:
    return classify(answer) is Verdict.RETRY


class _Tries:
    """The attempts made for one UID so far, and how each is paced, sent and counted."""

    def __init__(
        self, attempt: Callable[[], Awaitable[Answer]], policy: RetryPolicy, pacer: Pacer
    ) -> None:
        self._attempt = attempt
        self._policy = policy
        self._pacer = pacer
        self.answer: Answer | None = None
        self.attempts = self.sends = self.counted = 0
        self.ambiguous = self.halted = False
        self.own_time = 0.0  # seconds waited between attempts, outside run-wide outages

    async def once(self) -> bool:
        """Make one paced attempt; return False, sending nothing, when the run is halted."""
        pacer, clock = self._pacer, self._policy.clock
        if self.answer is None:  # a UID's first attempt: nothing of its own to bound yet
            ticket = await pacer.turn()
        else:
            if may_have_applied(self.answer):
                self.ambiguous = True
            ticket = await self._retry_turn()
        if not ticket:
            self.halted = pacer.halted  # else this UID's time ran out while it waited
            return False
        in_outage = pacer.in_outage
        sent_at = clock()
        try:
            answer = await self._attempt()
        except BaseException:
            pacer.release()
            raise
        seen = observation(answer, round_trip=clock() - sent_at, ticket=ticket)
        pacer.observe(seen)
        self.answer = answer
        self.attempts += 1
        self.sends += answer.sends
        if not (in_outage and seen.unavailable):
            self.counted += 1
        return True

    async def _retry_turn(self) -> int:
        """Wait for a retry's turn: no longer than this UID's time allows, and count the wait.

        During an outage the run's bound decides instead, and the wait does not count.
        """
        pacer, clock = self._pacer, self._policy.clock
        if pacer.in_outage:
            return await pacer.turn()
        waiting_since = clock()
        ticket = await pacer.turn(within=max(0.0, self._policy.max_time - self.own_time))
        if not pacer.in_outage:
            self.own_time += clock() - waiting_since  # a retry held by a pause: its time counts
        return ticket

    async def sleep(self, seconds: float) -> None:
        """Back off, in short steps so a halted run does not sit out a long backoff."""
        if not self._pacer.in_outage:
            self.own_time += seconds
        while seconds > 0 and not self._pacer.halted:
            step = min(seconds, HALT_CHECK)
            await self._policy.sleep(step)
            seconds -= step

    def backoff(self, attempt_number: int) -> float:
        """Seconds to wait after attempt ``attempt_number`` (1-based) before the next one."""
        if self.answer is not None and self.answer.http_status == TOO_MANY_REQUESTS:
            return 0.0  # the pacer's run-wide pause does the waiting for every worker at once
        policy = self._policy
        exponential = policy.backoff_multiplier * 2.0 ** (attempt_number - 1)
        return min(policy.backoff_max, exponential) + random.uniform(0, policy.jitter)  # noqa: S311  (jitter, not security)

    def exhausted(self, upcoming_sleep: float) -> bool:
        """Tell whether this UID has used up its attempts or its time.

        The run's pause (a 429's Retry-After, a spent window) will hold the next attempt too, so
        it counts as part of the coming wait.
        """
        pacer = self._pacer
        if pacer.in_outage:
            return False  # the run's outage bound decides, not this UID's
        policy = self._policy
        coming = max(upcoming_sleep, pacer.paused_for)
        return self.counted >= policy.max_attempts or self.own_time + coming >= policy.max_time

    def result(self) -> Attempted | None:
        answer = self.answer
        if answer is None:
            return None
        return Attempted(
            answer=answer,
            attempts=self.attempts,
            sends=self.sends,
            ambiguous_earlier=self.ambiguous or answer.sends > 1,
            abandoned=self.halted,
            waited=self.own_time,
        )


async def call_with_retries(
    attempt: Callable[[], Awaitable[Answer]],
    *,
    policy: RetryPolicy,
    pacer: Pacer,
    on_retry: OnRetry | None = None,
) -> Attempted | None:
    """Run ``attempt`` until its answer is final or the policy gives up; return the last answer.

    Every attempt first waits for ``pacer.turn()``. Once the pacer is halted no further attempt
    is made: the result is ``None`` when nothing was sent, else ``abandoned`` is set.
    """
    tries = _Tries(attempt, policy, pacer)
    # Most UIDs need one attempt. It is made before any tenacity loop is built: setting one up
    # costs more than a whole request on loopback.
    if not await tries.once() or tries.answer is None or not _is_retryable(tries.answer):
        return tries.result()
    first_wait = tries.backoff(1)
    if tries.exhausted(first_wait):
        return tries.result()
    if on_retry is not None:
        on_retry(tries.answer, 1, first_wait)
    await tries.sleep(first_wait)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and tries.answer is not None and state.next_action is not None:
            on_retry(tries.answer, tries.attempts, state.next_action.sleep)

    retrying = AsyncRetrying(
        retry=retry_if_result(_is_retryable),
        stop=lambda state: tries.exhausted(state.upcoming_sleep or 0.0),
        # tenacity numbers its attempts from 1; this loop starts at the UID's second.
        wait=lambda state: tries.backoff(state.attempt_number + 1),
        sleep=tries.sleep,
        before_sleep=before_sleep,
        # Giving up ends the loop quietly; the last answer is already in ``tries``.
        retry_error_callback=lambda _state: None,
        reraise=True,
    )
    async for try_ in retrying:
        with try_:
            if not await tries.once():
                break
        outcome = try_.retry_state.outcome
        if outcome is not None and not outcome.failed:
            try_.retry_state.set_result(tries.answer)
    return tries.result()
