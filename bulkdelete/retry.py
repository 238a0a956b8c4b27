"""The retry policy: which answers are retried, how long to wait, and when to give up.

Retries are decided on answers (``outcome.classify``), never on exceptions, so a
``CancelledError`` or a programming error is never retried. Each UID gets its own
``AsyncRetrying``; sharing one across tasks corrupts its state.

Every answer is shown to the run's ``Pacer`` first. A 429 pauses the whole run there, so the
retry itself waits only for that pause. While the pacer sees an outage, the run backs off as a
whole and the attempts a UID makes do not count against its own limits: the run's outage bound
(``max_outage``) decides instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_exponential_jitter

from bulkdelete.outcome import Answer, Verdict, classify
from bulkdelete.pacing import HALT_CHECK, Observation, Pacer

TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one UID: attempts, a time bound, and the backoff between attempts.

    ``sleep`` is injected so tests can run retries without waiting.
    """

    max_attempts: int = 6
    max_time: float = 300.0
    backoff_multiplier: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass(frozen=True, slots=True)
class Attempted:
    """The last answer for one UID and how many attempts and wire sends it took."""

    answer: Answer
    attempts: int
    sends: int
    ambiguous_earlier: bool  # an earlier attempt may have reached the server and deleted the user
    abandoned: bool = False  # the run halted before a retry the policy still allowed


OnRetry = Callable[[Answer, int, float], None]


def observation(answer: Answer, *, round_trip: float | None = None) -> Observation:
    """Return what the pacer should learn from an answer."""
    status, rate = answer.http_status, answer.rate
    return Observation(
        throttled=status == TOO_MANY_REQUESTS,
        unavailable=(status is None and classify(answer) is Verdict.RETRY)
        or (status is not None and status >= _SERVER_ERROR),
        retry_after=rate.retry_after,
        limit=rate.limit,
        remaining=rate.remaining,
        reset_at=rate.reset_at,
        round_trip=round_trip if status is not None else None,
    )


def _is_retryable(answer: Answer) -> bool:
    return classify(answer) is Verdict.RETRY


def _may_have_applied(answer: Answer) -> bool:
    """Tell whether a failed attempt could still have deleted the user on the server."""
    status = answer.http_status
    # No answer, a 5xx, or aiohttp's own resend after a dropped connection: it may have acted.
    return status is None or status >= _SERVER_ERROR or answer.sends > 1


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
    backoff = wait_exponential_jitter(
        multiplier=policy.backoff_multiplier, max=policy.backoff_max, jitter=policy.jitter
    )
    attempts = sends = counted = 0
    ambiguous = halted = False
    answer: Answer | None = None
    own_time = 0.0  # seconds this UID spent outside run-wide outages

    def wait(state: RetryCallState) -> float:
        if answer is not None and answer.http_status == TOO_MANY_REQUESTS:
            return 0.0  # the pacer's run-wide pause does the waiting for every worker at once
        return float(backoff(state))

    def stop(state: RetryCallState) -> bool:
        if pacer.in_outage:
            return False  # the run's outage bound decides, not this UID's
        upcoming = state.upcoming_sleep or 0.0
        return counted >= policy.max_attempts or own_time + upcoming >= policy.max_time

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and answer is not None and state.next_action is not None:
            on_retry(answer, state.attempt_number, state.next_action.sleep)

    async def sleep(seconds: float) -> None:
        nonlocal own_time
        if not pacer.in_outage:
            own_time += seconds
        # In short steps, so a halted run does not sit out a long backoff.
        while seconds > 0 and not pacer.halted:
            step = min(seconds, HALT_CHECK)
            await policy.sleep(step)
            seconds -= step

    retrying = AsyncRetrying(
        retry=retry_if_result(_is_retryable),
        stop=stop,
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        # Giving up ends the loop quietly; the last answer is already in ``answer``.
        retry_error_callback=lambda _state: None,
        reraise=True,
    )
    async for try_ in retrying:
        with try_:
            if answer is not None and _may_have_applied(answer):
                ambiguous = True
            if not await pacer.turn():
                halted = True
                break
            in_outage = pacer.in_outage
            sent_at = time.monotonic()
            try:
                answer = await attempt()
            except BaseException:
                pacer.release()
                raise
            seen = observation(answer, round_trip=time.monotonic() - sent_at)
            pacer.observe(seen)
            attempts += 1
            sends += answer.sends
            if not (in_outage and seen.unavailable):
                counted += 1
        outcome = try_.retry_state.outcome
        if outcome is not None and not outcome.failed:
            try_.retry_state.set_result(answer)
    if answer is None:
        return None
    return Attempted(
        answer=answer,
        attempts=attempts,
        sends=sends,
        ambiguous_earlier=ambiguous or answer.sends > 1,
        abandoned=halted,
    )
