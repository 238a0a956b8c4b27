"""The retry policy: what is retried, how long it waits, when it gives up, what it reports."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import tenacity
from fakeclock import FakeClock

from bulkdelete import retry
from bulkdelete.outcome import CONNECTION, TIMEOUT, TLS, Answer, Body, BodyKind, RateInfo
from bulkdelete.pacing import Observation, Pacer
from bulkdelete.pushback import OUTAGE_THRESHOLD
from bulkdelete.retry import Attempted, RetryPolicy, call_with_retries, observation

OK = Answer(200, body=Body(BodyKind.OBJECT, success=True))
GONE = Answer(404, "ERR_UID_NOT_FOUND", "not found")
UNAVAILABLE = Answer(503, None, "unavailable")
THROTTLED = Answer(429, "ERR_TOO_MANY_REQUESTS", "slow down", rate=RateInfo(retry_after=7.0))


class FakeTime(FakeClock):
    """The test's fake clock, with the pacer's sleeps told apart from the retry's."""

    def __init__(self) -> None:
        super().__init__(1000.0)
        self.pacer_sleep = self.sleeper()
        self.retry_sleep = self.sleeper()

    @property
    def pacer_sleeps(self) -> list[float]:
        return self.pacer_sleep.sleeps

    @property
    def retry_sleeps(self) -> list[float]:
        return self.retry_sleep.sleeps


class Script:
    """An attempt that returns the given answers in order and notes when each call started."""

    def __init__(self, answers: Iterable[Answer], fake: FakeTime) -> None:
        self._answers = list(answers)
        self._fake = fake
        self.started: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.started)

    async def __call__(self) -> Answer:
        self.started.append(self._fake.now)
        await asyncio.sleep(0)
        return self._answers.pop(0)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def pacer(fake: FakeTime) -> Pacer:
    # A ceiling far above what the tests send, so only pauses ever make it wait.
    return Pacer(1_000_000.0, clock=fake.clock, sleep=fake.pacer_sleep)


def policy_for(
    fake: FakeTime,
    *,
    max_attempts: int = 6,
    max_time: float = 300.0,
    backoff_multiplier: float = 0.5,
) -> RetryPolicy:
    """A policy with zero-cost sleeps; jitter 0 so backoff is exactly multiplier * 2**(n-1)."""
    return RetryPolicy(
        max_attempts=max_attempts,
        max_time=max_time,
        backoff_multiplier=backoff_multiplier,
        jitter=0.0,
        sleep=fake.retry_sleep,
        clock=fake.clock,
    )


async def run_script(
    answers: Iterable[Answer],
    fake: FakeTime,
    pacer: Pacer,
    on_retry: Callable[[Answer, int, float], None] | None = None,
    *,
    max_attempts: int = 6,
    max_time: float = 300.0,
    backoff_multiplier: float = 0.5,
) -> tuple[Attempted | None, Script]:
    """Run call_with_retries over scripted answers with the fake time's sleeps."""
    script = Script(answers, fake)
    policy = policy_for(
        fake, max_attempts=max_attempts, max_time=max_time, backoff_multiplier=backoff_multiplier
    )
    attempted = await call_with_retries(script, policy=policy, pacer=pacer, on_retry=on_retry)
    return attempted, script


async def run(
    answers: Iterable[Answer],
    fake: FakeTime,
    pacer: Pacer,
    on_retry: Callable[[Answer, int, float], None] | None = None,
    *,
    max_attempts: int = 6,
    max_time: float = 300.0,
    backoff_multiplier: float = 0.5,
) -> tuple[Attempted, Script]:
    """Like ``run_script`` for runs that are never halted, so a result always exists."""
    attempted, script = await run_script(
        answers,
        fake,
        pacer,
        on_retry,
        max_attempts=max_attempts,
        max_time=max_time,
        backoff_multiplier=backoff_multiplier,
    )
    assert attempted is not None
    return attempted, script


async def test_retries_a_5xx_then_succeeds(fake: FakeTime, pacer: Pacer) -> None:
    """A 503 is retried after a backoff sleep, and the 200 that follows is the answer."""
    attempted, script = await run([UNAVAILABLE, OK], fake, pacer)
    expected = (OK, 2, 2, 2, False)
    assert expected == (
        attempted.answer,
        attempted.attempts,
        attempted.sends,
        script.calls,
        attempted.abandoned,
    )
    assert script.started[1] - script.started[0] > 0  # it backed off before the retry


async def test_gives_up_after_max_attempts_with_the_last_answer(
    fake: FakeTime, pacer: Pacer
) -> None:
    """After max_attempts transient answers the last one is returned, not a RetryError."""
    answers = [Answer(503, None, f"try {n}") for n in range(1, 4)]
    attempted, script = await run([*answers, OK], fake, pacer, max_attempts=3)
    expected = (answers[-1], 3, 3, False)
    assert expected == (attempted.answer, attempted.attempts, script.calls, attempted.abandoned)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(403, "AUTH_ERR_NO_ACCESS", "no access"),
        Answer(404, "AUTH_ERR_APIKEY_NOT_FOUND", "bad key"),
        Answer(400, "ERR_BAD_REQUEST", "bad"),
        GONE,
        OK,
    ],
    ids=["fatal-403", "fatal-404", "fail-400", "not-found", "deleted"],
)
async def test_final_answers_are_not_retried(fake: FakeTime, pacer: Pacer, answer: Answer) -> None:
    """FATAL, FAIL, NOT_FOUND and DELETED answers end the loop at the first attempt."""
    attempted, script = await run([answer, OK], fake, pacer)
    expected: tuple[Answer, int, int, list[float]] = (answer, 1, 1, [])
    assert expected == (attempted.answer, attempted.attempts, script.calls, fake.retry_sleeps)


async def test_429_pauses_the_pacer_and_retry_itself_does_not_wait(
    fake: FakeTime, pacer: Pacer
) -> None:
    """A 429 with Retry-After pauses the whole run for it; the tenacity wait is 0."""
    seen: list[tuple[float, float]] = []  # (tenacity sleep, pacer.paused_for) at the retry

    def on_retry(_answer: Answer, _attempt: int, sleep: float) -> None:
        seen.append((sleep, pacer.paused_for))

    attempted, script = await run([THROTTLED, OK], fake, pacer, on_retry=on_retry)
    # At the retry: tenacity sleeps 0 and the run is paused for 7 s. The second attempt then
    # waited out the pause in turn(), on the pacer's sleep, and no retry sleep was taken.
    expected = (OK, [(0.0, 7.0)], 0.0, 7.0, 7.0, 1)
    assert expected == (
        attempted.answer,
        seen,
        sum(fake.retry_sleeps),
        sum(fake.pacer_sleeps),
        script.started[1] - script.started[0],
        pacer.pauses,
    )


async def test_429_without_retry_after_still_pauses(fake: FakeTime, pacer: Pacer) -> None:
    """A 429 with no Retry-After still pauses the run for a while."""
    paused: list[float] = []
    bare = Answer(429, "ERR_TOO_MANY_REQUESTS")
    await run([bare, OK], fake, pacer, on_retry=lambda *_: paused.append(pacer.paused_for))
    assert len(paused) == 1
    assert paused[0] > 0


async def test_huge_retry_after_is_capped(fake: FakeTime, pacer: Pacer) -> None:
    """A Retry-After of a year does not pause the run for a year."""
    year = 365 * 24 * 3600.0
    huge = Answer(429, "ERR_TOO_MANY_REQUESTS", rate=RateInfo(retry_after=year))
    paused: list[float] = []
    await run([huge, OK], fake, pacer, on_retry=lambda *_: paused.append(pacer.paused_for))
    assert 0 < paused[0] < year


async def test_pauses_count_against_max_time(fake: FakeTime, pacer: Pacer) -> None:
    """The run's pause for a 429 is time this UID spent retrying: 10 s each, 25 s allowed."""
    throttled = Answer(429, "ERR_TOO_MANY_REQUESTS", rate=RateInfo(retry_after=10.0))
    attempted, script = await run([throttled] * 6 + [OK], fake, pacer, max_time=25.0)
    # Two pauses (20 s) were waited; a third would have reached 30 s.
    expected = (throttled, 3, 20.0)
    assert expected == (attempted.answer, script.calls, attempted.waited)


async def test_no_retry_starts_a_pause_its_time_cannot_cover(fake: FakeTime) -> None:
    """Retry-After: 86400, cut to max_pause (60 s), against 30 s of max_time: give up at once."""
    pacer = Pacer(1_000_000.0, max_pause=60.0, clock=fake.clock, sleep=fake.pacer_sleep)
    day = Answer(429, "ERR_TOO_MANY_REQUESTS", rate=RateInfo(retry_after=86_400.0))
    attempted, script = await run([day, OK], fake, pacer, max_time=30.0)
    expected = (day, 1, 0.0, 60.0)
    assert expected == (attempted.answer, script.calls, sum(fake.pacer_sleeps), pacer.paused_for)


async def test_stop_before_delay_counts_the_next_sleep(fake: FakeTime, pacer: Pacer) -> None:
    """No retry is made when its backoff alone would pass max_time."""
    # First backoff is backoff_multiplier * 2**0 = 10 s with no jitter, beyond max_time = 5 s.
    attempted, script = await run(
        [UNAVAILABLE, OK], fake, pacer, max_time=5.0, backoff_multiplier=10.0
    )
    expected: tuple[Answer, int, int, list[float]] = (UNAVAILABLE, 1, 1, [])
    assert expected == (attempted.answer, attempted.attempts, script.calls, fake.retry_sleeps)


async def test_max_time_bounds_the_time_spent_backing_off(fake: FakeTime, pacer: Pacer) -> None:
    """Retries stop before one UID's backoff time would reach max_time, attempts left or not."""
    # Backoffs are 1, 2, 4, 8 s (multiplier 1, no jitter). After waiting 1 + 2 + 4 = 7 s, the next
    # 8 s would reach 15 s, past max_time = 10 s: so four attempts, with 100 allowed.
    attempted, script = await run(
        [UNAVAILABLE] * 5 + [OK],
        fake,
        pacer,
        max_attempts=100,
        max_time=10.0,
        backoff_multiplier=1.0,
    )
    expected = (UNAVAILABLE, 4, 7.0)
    assert expected == (attempted.answer, script.calls, sum(fake.retry_sleeps))


async def test_on_retry_is_called_once_per_retry(fake: FakeTime, pacer: Pacer) -> None:
    """on_retry gets (answer, attempt number, sleep) for each retry, matching the real waits."""
    calls: list[tuple[Answer, int, float]] = []
    first, second = Answer(503, None, "a"), Answer(None, TIMEOUT, "b")
    _, script = await run(
        [first, second, OK],
        fake,
        pacer,
        on_retry=lambda answer, n, sleep: calls.append((answer, n, sleep)),
        backoff_multiplier=0.5,
    )
    assert [(first, 1), (second, 2)] == [(answer, n) for answer, n, _ in calls]
    waited = [later - earlier for earlier, later in itertools.pairwise(script.started)]
    assert waited == [sleep for _, _, sleep in calls]
    # Exponential backoff: the second wait is twice the first.
    assert waited[1] == 2 * waited[0] > 0


async def test_jitter_is_added_after_the_backoff_cap(fake: FakeTime, pacer: Pacer) -> None:
    """At the cap every wait still carries its own jitter: UIDs at the cap do not retry in step."""
    policy = RetryPolicy(
        backoff_multiplier=1.0,
        backoff_max=1.0,
        jitter=1.0,
        sleep=fake.retry_sleep,
        clock=fake.clock,
    )
    script = Script([UNAVAILABLE] * 4 + [OK], fake)
    await call_with_retries(script, policy=policy, pacer=pacer)
    waited = [later - earlier for earlier, later in itertools.pairwise(script.started)]
    assert [1.0 < wait < 2.0 for wait in waited] == [True] * 4
    assert len(set(waited)) == len(waited)


async def test_no_retry_loop_is_built_for_a_uid_answered_at_once(
    fake: FakeTime, pacer: Pacer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final first answer costs no tenacity loop (most UIDs: building one costs more than a
    request on loopback); a retried UID gets one of its own."""
    built: list[object] = []

    class Counted(tenacity.AsyncRetrying):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(retry, "AsyncRetrying", Counted)
    await run([OK], fake, pacer)
    at_once = len(built)
    await run([UNAVAILABLE, OK], fake, pacer)
    expected = (0, 1)
    assert expected == (at_once, len(built))


async def test_every_attempt_waits_for_its_turn(fake: FakeTime) -> None:
    """Retries are paced too: the pacer is asked once per attempt."""

    class CountingPacer(Pacer):
        turns = 0

        async def turn(self, *, within: float | None = None) -> int:
            self.turns += 1
            return await super().turn(within=within)

    pacer = CountingPacer(1_000_000.0, clock=fake.clock, sleep=fake.pacer_sleep)
    await run([UNAVAILABLE, UNAVAILABLE, OK], fake, pacer)
    expected = 3
    assert expected == pacer.turns


async def test_cancellation_propagates_and_is_not_retried(fake: FakeTime, pacer: Pacer) -> None:
    """CancelledError raised inside an attempt ends the call at once; it is not retried."""
    calls = 0

    async def cancelled() -> Answer:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(cancelled, policy=policy_for(fake), pacer=pacer)
    expected: tuple[int, list[float]] = (1, [])
    assert expected == (calls, fake.retry_sleeps)


async def test_a_programming_error_propagates_and_is_not_retried(
    fake: FakeTime, pacer: Pacer
) -> None:
    """An unexpected exception from an attempt is raised, not retried or swallowed."""
    calls = 0

    async def broken() -> Answer:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError, match="bug"):
        await call_with_retries(broken, policy=policy_for(fake), pacer=pacer)
    expected = 1
    assert expected == calls


@pytest.mark.parametrize(
    ("earlier", "ambiguous"),
    [
        (Answer(None, TIMEOUT), True),
        (Answer(None, CONNECTION), True),
        (Answer(503), True),
        (Answer(500), True),
        (Answer(200, body=Body(BodyKind.NOT_JSON)), True),
        (THROTTLED, False),
    ],
    ids=["timeout", "connection", "503", "500", "html-200", "429"],
)
async def test_ambiguous_earlier_after_a_retry(
    fake: FakeTime, pacer: Pacer, earlier: Answer, ambiguous: bool
) -> None:
    """A not-found after a timeout, dropped link, 5xx or unproven 2xx is ambiguous; not a 429."""
    attempted, _ = await run([earlier, GONE], fake, pacer)
    expected = (GONE, 2, ambiguous)
    assert expected == (
        attempted.answer,
        attempted.attempts,
        attempted.ambiguous_earlier,
    )


async def test_ambiguous_earlier_when_the_final_answer_was_resent(
    fake: FakeTime, pacer: Pacer
) -> None:
    """A single attempt that aiohttp sent twice is ambiguous on its own."""
    resent = Answer(404, "ERR_UID_NOT_FOUND", sends=2)
    attempted, _ = await run([resent], fake, pacer)
    expected = (1, 2, True)
    assert expected == (attempted.attempts, attempted.sends, attempted.ambiguous_earlier)


async def test_a_plain_first_answer_is_not_ambiguous(fake: FakeTime, pacer: Pacer) -> None:
    """A not-found at the first attempt with one send is not ambiguous."""
    attempted, _ = await run([GONE], fake, pacer)
    assert False is attempted.ambiguous_earlier


async def test_sends_add_up_over_attempts(fake: FakeTime, pacer: Pacer) -> None:
    """Attempted.sends sums every attempt's wire sends, resends included."""
    attempted, _ = await run([Answer(503, sends=2), OK], fake, pacer)
    expected = (2, 3)
    assert expected == (attempted.attempts, attempted.sends)


async def test_concurrent_calls_keep_separate_state(fake: FakeTime, pacer: Pacer) -> None:
    """Many UIDs retried at once each get their own attempt count (no shared retry state)."""
    scripts = [[UNAVAILABLE] * n + [OK] for n in range(5)]
    results = await asyncio.gather(*(run(script, fake, pacer) for script in scripts))
    assert [n + 1 for n in range(5)] == [attempted.attempts for attempted, _ in results]


async def test_halted_before_the_first_attempt_sends_nothing(fake: FakeTime, pacer: Pacer) -> None:
    """Once the pacer is halted no attempt is made and the result is None."""
    pacer.halt()
    attempted, script = await run_script([OK], fake, pacer)
    expected = (None, 0)
    assert expected == (attempted, script.calls)


async def test_halt_before_a_retry_abandons_it(fake: FakeTime, pacer: Pacer) -> None:
    """A halt between attempts keeps the last answer, makes no retry, and marks it abandoned."""
    attempted, script = await run_script(
        [UNAVAILABLE, OK], fake, pacer, on_retry=lambda *_: pacer.halt()
    )
    assert attempted is not None
    expected = (UNAVAILABLE, 1, 1, True)
    assert expected == (
        attempted.answer,
        attempted.attempts,
        script.calls,
        attempted.abandoned,
    )


async def test_halt_cuts_a_long_backoff_short(fake: FakeTime, pacer: Pacer) -> None:
    """A halt during a long backoff is noticed within a short step, not after the whole wait."""
    fake.retry_sleep.during_sleep = pacer.halt  # halt during the first step of the backoff
    attempted, script = await run_script([UNAVAILABLE, OK], fake, pacer, backoff_multiplier=100.0)
    assert attempted is not None
    expected = (1, True, 1)
    assert expected == (script.calls, attempted.abandoned, len(fake.retry_sleeps))
    assert fake.retry_sleeps[0] < 100.0  # one short step of the 100 s backoff, then it stopped


async def test_attempts_during_an_outage_do_not_count(fake: FakeTime, pacer: Pacer) -> None:
    """While the pacer sees an outage, failed attempts do not use up the UID's max_attempts."""
    for _ in range(OUTAGE_THRESHOLD):  # other workers' answers: the server looks down
        pacer.observe(Observation(unavailable=True))
    assert pacer.in_outage
    attempted, script = await run([UNAVAILABLE] * 4 + [OK], fake, pacer, max_attempts=2)
    expected = (OK, 5, 5)
    assert expected == (attempted.answer, attempted.attempts, script.calls)


@pytest.mark.parametrize(
    ("answer", "throttled", "unavailable"),
    [
        (THROTTLED, True, False),
        (Answer(503), False, True),
        (Answer(500), False, True),
        (Answer(None, TIMEOUT), False, True),
        (Answer(None, CONNECTION), False, True),
        (Answer(None, TLS), False, False),
        (GONE, False, False),
        (OK, False, False),
        (Answer(400, "ERR_BAD_REQUEST"), False, False),
    ],
    ids=["429", "503", "500", "timeout", "connection", "tls", "404", "200", "400"],
)
def test_observation_tells_the_pacer_about_throttling_and_outages(
    answer: Answer, throttled: bool, unavailable: bool
) -> None:
    """429s are throttling; 5xx and missing answers are unavailability; a TLS error is neither."""
    seen = observation(answer)
    expected = (throttled, unavailable, answer.rate.retry_after)
    assert expected == (seen.throttled, seen.unavailable, seen.retry_after)
