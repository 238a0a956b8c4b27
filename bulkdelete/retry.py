"""The retry policy: which answers are retried, how long to wait, and when to give up.

Retries are decided on answers (``outcome.classify``), never on exceptions, so a
``CancelledError`` or a programming error is never retried. Each UID gets its own
``AsyncRetrying``; sharing one across tasks corrupts its state. A 429 pauses the whole run
through the ``Pacer`` and the retry itself waits only for that pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from bulkdelete.outcome import Answer, Verdict, classify
from bulkdelete.pacing import HALT_CHECK, Pacer

# Without Retry-After, a 429 still pauses the run for this long.
DEFAULT_THROTTLE_PAUSE = 1.0
MAX_RETRY_AFTER = 300.0
TOO_MANY_REQUESTS = 429


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


def _is_retryable(answer: Answer) -> bool:
    return classify(answer) is Verdict.RETRY


def _may_have_applied(answer: Answer) -> bool:
    """Tell whether a failed attempt could still have deleted the user on the server."""
    status = answer.http_status
    # No answer, a 5xx, or aiohttp's own resend after a dropped connection: it may have acted.
    return status is None or status >= 500 or answer.sends > 1  # noqa: PLR2004


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

    def wait(state: RetryCallState) -> float:
        answer = state.outcome.result() if state.outcome else None
        if answer is not None and answer.http_status == TOO_MANY_REQUESTS:
            # The run-wide pause in the pacer does the waiting for every worker at once.
            return 0.0
        return float(backoff(state))

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            on_retry(state.outcome.result(), state.attempt_number, state.next_action.sleep)

    async def sleep(seconds: float) -> None:
        # In short steps, so a halted run does not sit out a long backoff.
        while seconds > 0 and not pacer.halted:
            step = min(seconds, HALT_CHECK)
            await policy.sleep(step)
            seconds -= step

    attempts = sends = 0
    ambiguous = False
    answer: Answer | None = None
    retrying = AsyncRetrying(
        retry=retry_if_result(_is_retryable),
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.max_time),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        # Giving up ends the loop quietly; the last answer is already in ``answer``.
        retry_error_callback=lambda _state: None,
        reraise=True,
    )

    halted = False
    async for try_ in retrying:
        with try_:
            if answer is not None and _may_have_applied(answer):
                ambiguous = True
            if not await pacer.turn():
                halted = True
                break
            answer = await attempt()
            attempts += 1
            sends += answer.sends
            if answer.http_status == TOO_MANY_REQUESTS:
                pacer.pause(min(answer.rate.retry_after or DEFAULT_THROTTLE_PAUSE, MAX_RETRY_AFTER))
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
