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

The rules are tenacity's stock ones: ``retry_if_result`` on the verdict, ``wait_exponential``
plus ``wait_random`` between attempts, ``stop_after_attempt | stop_before_delay`` as the bounds.
Two things are this module's own, because no stock combinator can express them:

- **What the bounds count.** tenacity's stops read its attempt number and the seconds since its
  first attempt, on ``time.monotonic``. A UID's bounds count otherwise: an attempt answered
  "unavailable" while the pacer saw an outage is not counted, nor is time waited in an outage;
  the run's pause (a 429's Retry-After, a spent window) holds the next attempt too, so it counts
  as part of the coming wait; time is the injected clock's, not tenacity's; and the seconds the
  requests themselves took are not waiting. So ``_OwnAccount`` hands the stock stops a copy of
  tenacity's state that holds this UID's own account (``_Tries``) instead.
- **No backoff after a 429** (``_NoneAfter429``): the pacer's run-wide pause does that waiting;
  a backoff on top would wait twice.

``wait_exponential_jitter`` is not used: it caps the jitter together with the backoff, so every
UID at the cap would retry at the same moment; the jitter is added after the cap instead.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from bulkdelete.clock import SYSTEM_CLOCK, Clock
from bulkdelete.outcome import Answer, Verdict, classify, may_have_applied
from bulkdelete.pacing import HALT_CHECK, Observation, Pacer
from bulkdelete.settings import DEFAULTS, Settings

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
    sleep: Callable[[float], Awaitable[None]] = SYSTEM_CLOCK.sleep
    clock: Callable[[], float] = SYSTEM_CLOCK.monotonic

    def stop(self) -> stop_base:
        """Return the bounds: give up at ``max_attempts``, or before a wait past ``max_time``."""
        return stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_time)

    def wait(self) -> wait_base:
        """Return the backoff: exponential up to ``backoff_max``, then up to ``jitter`` more."""
        backoff = wait_exponential(multiplier=self.backoff_multiplier, max=self.backoff_max)
        return backoff + wait_random(0, self.jitter)


def pacer_and_policy(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> tuple[Pacer, RetryPolicy]:
    """Return the pacer and the retry policy of a run: one place for deletes and read-backs."""
    pacer = Pacer(
        settings.rate_ceiling,
        max_concurrency=settings.concurrency,
        max_share=settings.max_share,
        max_outage=settings.max_outage,
        max_pause=settings.max_pause,
        clock=clock.monotonic,
        wall_clock=clock.wall,
        sleep=clock.sleep,
    )
    policy = RetryPolicy(
        max_attempts=settings.max_attempts,
        max_time=settings.max_retry_time,
        sleep=clock.sleep,
        clock=clock.monotonic,
    )
    return pacer, policy


@dataclass(slots=True)  # not frozen, as one is made per UID: see ``pacing.Observation``
class Attempted:
    """The last answer for one UID and how many attempts and wire sends it took."""

    answer: Answer
    attempts: int
    sends: int
    ambiguous_earlier: bool  # an earlier attempt may have reached the server and deleted the user
    abandoned: bool = False  # the run halted before a retry the policy still allowed
    waited: float = 0.0  # seconds spent between attempts that counted against ``max_time``
    verdict: Verdict = Verdict.FAIL  # what the last answer means (``outcome.classify``)


OnRetry = Callable[[Answer, int, float], None]


def observation(
    answer: Answer,
    *,
    round_trip: float | None = None,
    ticket: int = 0,
    verdict: Verdict | None = None,
) -> Observation:
    """Return what the pacer should learn from an answer to the request ``turn`` numbered.

    ``verdict`` is ``classify(answer)`` when the caller has it already.
    """
    status, rate = answer.http_status, answer.rate
    if verdict is None:
        verdict = classify(answer)
    return Observation(
        throttled=status == TOO_MANY_REQUESTS,
        unavailable=(status is None and verdict is Verdict.RETRY)
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
        self.pacer = pacer
        self.answer: Answer | None = None
        self.verdict = Verdict.FAIL  # of the last answer
        self.attempts = self.sends = self.counted = 0
        self.ambiguous = self.halted = False
        self.own_time = 0.0  # seconds waited between attempts, outside run-wide outages
        self.backing_off = False  # a retry is due: between ``on_retry`` and its attempt
        self.on_resume: Callable[[], None] | None = None

    async def once(self) -> bool:
        """Make one paced attempt; return False, sending nothing, when the run is halted."""
        pacer, clock = self.pacer, self._policy.clock
        if self.answer is None:  # a UID's first attempt: nothing of its own to bound yet
            ticket = await pacer.turn()
        else:
            if may_have_applied(self.answer):
                self.ambiguous = True
            ticket = await self._retry_turn()
        if not ticket:
            self.halted = pacer.halted  # else this UID's time ran out while it waited
            return False
        if self.backing_off:
            self.resume()
        in_outage = pacer.in_outage
        sent_at = clock()
        try:
            answer = await self._attempt()
        except BaseException:
            pacer.release()
            raise
        # Classified once here, for the pacer, the retry decision and the row's result.
        self.verdict = verdict = classify(answer)
        seen = observation(answer, round_trip=clock() - sent_at, ticket=ticket, verdict=verdict)
        pacer.observe(seen)
        self.answer = answer
        self.attempts += 1
        self.sends += answer.sends
        if not (in_outage and seen.unavailable):
            self.counted += 1
        return True

    def resume(self) -> None:
        """End the wait for a retry that ``on_retry`` announced."""
        self.backing_off = False
        if self.on_resume is not None:
            self.on_resume()

    async def _retry_turn(self) -> int:
        """Wait for a retry's turn: no longer than this UID's time allows, and count the wait.

        During an outage the run's bound decides instead, and the wait does not count.
        """
        pacer, clock = self.pacer, self._policy.clock
        if pacer.in_outage:
            return await pacer.turn()
        waiting_since = clock()
        ticket = await pacer.turn(within=max(0.0, self._policy.max_time - self.own_time))
        if not pacer.in_outage:
            self.own_time += clock() - waiting_since  # a retry held by a pause: its time counts
        return ticket

    async def sleep(self, seconds: float) -> None:
        """Back off, in short steps so a halted run does not sit out a long backoff."""
        if not self.pacer.in_outage:
            self.own_time += seconds
        while seconds > 0 and not self.pacer.halted:
            step = min(seconds, HALT_CHECK)
            await self._policy.sleep(step)
            seconds -= step

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
            verdict=self.verdict,
        )


class _OwnAccount(stop_base):
    """Apply ``stops`` to one UID's own account of attempts and time: see the module docstring."""

    def __init__(self, tries: _Tries, stops: stop_base) -> None:
        self._tries = tries
        self._stops = stops

    def __call__(self, retry_state: RetryCallState) -> bool:
        tries, pacer = self._tries, self._tries.pacer
        if pacer.in_outage:
            return False  # the run's outage bound decides, not this UID's
        account = copy.copy(retry_state)
        account.attempt_number = tries.counted
        account.start_time, account.outcome_timestamp = 0.0, tries.own_time
        # The run's pause will hold the next attempt too: it is part of the coming wait.
        account.upcoming_sleep = max(retry_state.upcoming_sleep, pacer.paused_for)
        return self._stops(account)


class _NoneAfter429(wait_base):
    """Wait as ``backoff`` does, except after a 429, whose run-wide pause does the waiting."""

    def __init__(self, backoff: wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            answer: Answer = outcome.result()
            if answer.http_status == TOO_MANY_REQUESTS:
                return 0.0
        return self._backoff(retry_state)


async def call_with_retries(
    attempt: Callable[[], Awaitable[Answer]],
    *,
    policy: RetryPolicy,
    pacer: Pacer,
    on_retry: OnRetry | None = None,
    on_resume: Callable[[], None] | None = None,
) -> Attempted | None:
    """Run ``attempt`` until its answer is final or the policy gives up; return the last answer.

    Every attempt first waits for ``pacer.turn()``. Once the pacer is halted no further attempt
    is made: the result is ``None`` when nothing was sent, else ``abandoned`` is set.
    ``on_retry`` is told of each retry as its wait begins, and ``on_resume`` when that wait ends:
    as the retry leaves, or as the loop ends (given up, halted, cancelled) before it does.
    """
    tries = _Tries(attempt, policy, pacer)
    # Most UIDs need one attempt. It is made before any tenacity loop is built: setting one up
    # costs more than a whole request on loopback.
    await tries.once()
    if tries.answer is None or tries.verdict is not Verdict.RETRY:
        return tries.result()

    tries.on_resume = on_resume

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and tries.answer is not None and state.next_action is not None:
            on_retry(tries.answer, tries.attempts, state.next_action.sleep)
        tries.backing_off = True

    retrying = AsyncRetrying(
        retry=retry_if_result(_is_retryable),
        stop=_OwnAccount(tries, policy.stop()),
        wait=_NoneAfter429(policy.wait()),
        sleep=tries.sleep,
        before_sleep=before_sleep,
        # Giving up ends the loop quietly; the last answer is already in ``tries``.
        retry_error_callback=lambda _state: None,
        reraise=True,
    )
    made = True  # tenacity's first attempt is the one made above: it only hands its answer over
    try:
        async for try_ in retrying:
            with try_:
                if not made and not await tries.once():
                    break
                made = False
            outcome = try_.retry_state.outcome
            if outcome is not None and not outcome.failed:
                try_.retry_state.set_result(tries.answer)
    finally:
        if tries.backing_off:
            tries.resume()
    return tries.result()
