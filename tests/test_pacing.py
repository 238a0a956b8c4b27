"""Run-wide pacing: the pause every request obeys, the halt, the outage breaker, the rate."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock, run_on_virtual_time
from helpers import FakeFactory, cli_env, row_records, run_cli
from pacing_sim import EPOCH, Server, new_pacer, send

from bulkdelete.fake import FakeConfig
from bulkdelete.pacing import HALT_CHECK, Observation, Pacer
from bulkdelete.pushback import OUTAGE_THRESHOLD

# A ceiling far above what the pause tests send, so only pauses ever make turn() wait.
UNLIMITED = 1_000_000.0


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pacer(fake: FakeClock) -> Pacer:
    return Pacer(UNLIMITED, clock=fake.clock, sleep=fake.sleep)


async def test_turn_does_not_wait_when_not_paused(fake: FakeClock, pacer: Pacer) -> None:
    """Without a pause, turn() returns at once and allows the request."""
    expected: tuple[bool, list[float], float] = (True, [], 0.0)
    assert expected == (await pacer.turn(), fake.sleeps, pacer.paused_for)


async def test_pause_makes_turn_wait_until_resume(fake: FakeClock, pacer: Pacer) -> None:
    """After pause(5), turn() sleeps until exactly 5 s later and then allows the request."""
    pacer.pause(5.0)
    paused_for = pacer.paused_for
    allowed = await pacer.turn()
    expected = (5.0, True, 105.0, 0.0)
    assert expected == (paused_for, allowed, fake.now, pacer.paused_for)


async def test_shorter_later_pause_does_not_shorten(fake: FakeClock, pacer: Pacer) -> None:
    """A shorter pause during a longer one leaves the resume time where it was."""
    pacer.pause(10.0)
    fake.now += 1.0
    pacer.pause(2.0)
    paused_for = pacer.paused_for
    await pacer.turn()
    expected = (9.0, 110.0)
    assert expected == (paused_for, fake.now)


async def test_longer_later_pause_extends(fake: FakeClock, pacer: Pacer) -> None:
    """A pause reaching past the current one moves the resume time out."""
    pacer.pause(2.0)
    pacer.pause(10.0)
    paused_for = pacer.paused_for
    await pacer.turn()
    expected = (10.0, 110.0)
    assert expected == (paused_for, fake.now)


async def test_pause_extended_while_waiting_is_obeyed(fake: FakeClock, pacer: Pacer) -> None:
    """A turn already waiting also waits out a pause another worker adds meanwhile."""
    pacer.pause(1.0)
    fake.during_sleep = lambda: pacer.pause(30.0)  # another worker's 429, mid-wait
    await pacer.turn()
    # The second pause was set at the end of the first sleep step and runs 30 s from there.
    expected = pytest.approx((100.0 + fake.sleeps[0] + 30.0, 0.0))
    assert expected == (fake.now, pacer.paused_for)


async def test_pauses_counts_pauses_that_took_effect(fake: FakeClock, pacer: Pacer) -> None:
    """``pauses`` counts each pause that moved the resume time, not ones it already covered."""
    pacer.pause(10.0)
    pacer.pause(3.0)  # inside the first: no new pause
    after_two = pacer.pauses
    await pacer.turn()
    pacer.pause(5.0)  # a fresh pause after the first ended
    expected = (1, 2)
    assert expected == (after_two, pacer.pauses)


async def test_every_waiting_turn_obeys_the_pause(fake: FakeClock, pacer: Pacer) -> None:
    """A pause holds every worker: none is let through before the resume time."""
    released: list[float] = []

    async def worker() -> None:
        await pacer.turn()
        released.append(fake.now)

    pacer.pause(4.0)
    await asyncio.gather(*(worker() for _ in range(5)))
    assert len(released) == 5
    assert min(released) >= 104.0


async def test_halt_makes_turn_refuse(pacer: Pacer) -> None:
    """After halt(), turn() returns False: the caller must send nothing."""
    before = (pacer.halted, await pacer.turn())
    pacer.halt()
    after = (pacer.halted, await pacer.turn())
    expected = ((False, True), (True, False))
    assert expected == (before, after)


async def test_halt_during_a_long_pause_is_noticed_quickly(fake: FakeClock, pacer: Pacer) -> None:
    """A turn waiting out a long pause returns False soon after a halt, not at the resume time."""
    pacer.pause(300.0)
    fake.during_sleep = pacer.halt
    allowed = await pacer.turn()
    expected = (False, 1)
    assert expected == (allowed, len(fake.sleeps))
    assert fake.sleeps[0] < 300.0  # it slept one short step, then saw the halt


# --- observe(): 429s, the outage breaker, the budget, and requests in flight ---------------------

DOWN = Observation(unavailable=True)
FINE = Observation()
WALL = 1_700_000_000.0  # the wall clock (unix time) the rate-limit headers are read against


async def answered(pacer: Pacer, seen: Observation) -> None:
    """Send one request through the pacer (turn, then observe its answer)."""
    assert await pacer.turn()
    pacer.observe(seen)


async def test_observed_429_pauses_the_run_for_retry_after(pacer: Pacer) -> None:
    """A 429 with Retry-After pauses every request for that long."""
    await answered(pacer, Observation(throttled=True, retry_after=7.0))
    expected = (7.0, 1)
    assert expected == (pacer.paused_for, pacer.pauses)


async def test_observed_429_without_retry_after_still_pauses(pacer: Pacer) -> None:
    """A 429 with no Retry-After pauses the run for some time anyway."""
    await answered(pacer, Observation(throttled=True))
    assert pacer.paused_for > 0


@pytest.mark.parametrize("retry_after", [86_400.0, 365 * 24 * 3600.0, 1e300])
async def test_no_retry_after_pauses_the_run_beyond_max_pause(
    fake: FakeClock, retry_after: float
) -> None:
    """A Retry-After of a day, a year or 1e300 pauses the run max_pause (a documented cap)."""
    pacer = Pacer(UNLIMITED, max_pause=12.0, clock=fake.clock, sleep=fake.sleep)
    await answered(pacer, Observation(throttled=True, retry_after=retry_after))
    expected = 12.0
    assert expected == pacer.paused_for


async def test_only_429s_for_max_outage_halt_the_run(fake: FakeClock) -> None:
    """429s and nothing else for max_outage halt the run, and say so; one success resets that."""
    pacer = Pacer(UNLIMITED, max_outage=60.0, max_pause=1.0, clock=fake.clock, sleep=fake.sleep)
    refused = Observation(throttled=True, retry_after=86_400.0)
    await answered(pacer, refused)
    fake.now += 50.0
    await answered(pacer, FINE)  # one request got through: the count starts again
    for _ in range(6):
        fake.now += 10.0
        await answered(pacer, refused)  # 429s only, for 50 s since the success
    before = (pacer.refusal_exceeded, pacer.halted)
    fake.now += 10.0
    await answered(pacer, refused)  # 60 s of them
    expected = ((False, False), (True, True, 0))
    assert expected == (before, (pacer.refusal_exceeded, pacer.halted, await pacer.turn()))


async def test_an_idle_spell_after_a_429_is_not_a_refusal(fake: FakeClock) -> None:
    """Time with no answer at all (an idle run) does not count as being refused."""
    pacer = Pacer(UNLIMITED, max_outage=60.0, clock=fake.clock, sleep=fake.sleep)
    await answered(pacer, Observation(throttled=True, retry_after=1.0))
    fake.now += 600.0
    expected = (False, False)
    assert expected == ((await pacer.turn()) == 0, pacer.refusal_exceeded)


async def test_a_few_failures_are_not_an_outage(pacer: Pacer) -> None:
    """Fewer than OUTAGE_THRESHOLD unavailable answers in a row do not pause the run."""
    for _ in range(OUTAGE_THRESHOLD - 1):
        await answered(pacer, DOWN)
    expected = (False, 0.0)
    assert expected == (pacer.in_outage, pacer.paused_for)


async def test_a_success_resets_the_count_of_failures(pacer: Pacer) -> None:
    """Failures separated by a success never add up to an outage."""
    for _ in range(3):
        for _ in range(OUTAGE_THRESHOLD - 1):
            await answered(pacer, DOWN)
        await answered(pacer, FINE)
    assert False is pacer.in_outage


async def test_failures_in_a_row_start_an_outage_with_growing_pauses(pacer: Pacer) -> None:
    """OUTAGE_THRESHOLD unavailable answers in a row pause the run, longer after each failure."""
    for _ in range(OUTAGE_THRESHOLD - 1):
        await answered(pacer, DOWN)
    pauses = []
    for _ in range(4):
        await answered(pacer, DOWN)
        pauses.append(pacer.paused_for)
    assert pacer.in_outage
    assert 0 < pauses[0] < pauses[1] < pauses[2] < pauses[3]


async def test_a_success_ends_the_outage(pacer: Pacer) -> None:
    """One good answer ends the outage; a single failure after it does not start a new one."""
    for _ in range(OUTAGE_THRESHOLD):
        await answered(pacer, DOWN)
    during = pacer.in_outage
    await answered(pacer, FINE)
    after = pacer.in_outage
    await answered(pacer, DOWN)
    expected = (True, False, False)
    assert expected == (during, after, pacer.in_outage)


async def test_during_an_outage_one_probe_at_a_time(pacer: Pacer) -> None:
    """In an outage, once the pause ends, one request probes; others wait for its answer."""
    for _ in range(OUTAGE_THRESHOLD):
        await answered(pacer, DOWN)
    probe = await pacer.turn()
    waiter = asyncio.create_task(pacer.turn())
    for _ in range(20):  # let the waiter loop on its (instant) sleeps for a while
        await asyncio.sleep(0)
    still_waiting = not waiter.done()
    pacer.observe(FINE)  # the probe's answer: the server is back
    expected = (True, True, True)
    assert expected == (probe > 0, still_waiting, await waiter > 0)


async def test_an_outage_longer_than_max_outage_halts_the_run(fake: FakeClock) -> None:
    """Past max_outage the next request finds the run halted, even with no answer to wait for."""
    pacer = Pacer(UNLIMITED, max_outage=60.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(OUTAGE_THRESHOLD):
        await answered(pacer, DOWN)
    fake.now += 40.0
    await answered(pacer, DOWN)
    before = (pacer.outage_exceeded, pacer.halted)
    fake.now += 30.0  # 70 s into the outage
    after = (await pacer.turn(), pacer.outage_exceeded, pacer.halted)
    expected = ((False, False), (False, True, True))
    assert expected == (before, after)


async def test_the_outage_backoff_never_outlasts_max_outage(fake: FakeClock) -> None:
    """Answers already in flight do not grow the backoff, and no pause runs past the bound."""
    pacer = Pacer(UNLIMITED, max_outage=5.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(OUTAGE_THRESHOLD + 20):  # a burst of failures sent before the outage was seen
        assert await pacer.turn()
    for _ in range(OUTAGE_THRESHOLD + 20):
        pacer.observe(DOWN)
    waited_from = fake.now
    while await pacer.turn():  # probes, one at a time, each failing
        pacer.observe(DOWN)
    assert pacer.outage_exceeded
    assert fake.now - waited_from <= 5.0 + HALT_CHECK


async def test_a_second_of_429s_halves_the_rate_and_it_recovers(fake: FakeClock) -> None:
    """When every answer of a second is a 429 the rate about halves; a quiet spell restores it."""
    pacer = Pacer(1e6, clock=fake.clock, wall_clock=lambda: WALL, sleep=fake.sleep)
    for _ in range(10):
        await answered(pacer, Observation(throttled=True, retry_after=0.0))
    fake.now += 1.0
    await answered(pacer, Observation(throttled=True, retry_after=0.0))
    throttled_rate = pacer.rate
    fake.now += 600.0
    await answered(pacer, FINE)
    fake.now += 1.0
    await answered(pacer, FINE)
    assert 0.5e6 <= throttled_rate <= 0.6e6  # halved, then a second's 10% recovery
    expected = 1e6
    assert expected == pacer.rate


async def test_random_429s_cost_only_their_share(fake: FakeClock) -> None:
    """4% of answers refused at random, for five minutes, leave the rate at its ceiling."""
    pacer = Pacer(1e6, clock=fake.clock, wall_clock=lambda: WALL, sleep=fake.sleep)
    for _second in range(300):
        for n in range(100):
            await answered(pacer, Observation(throttled=n % 25 == 0, retry_after=0.0))
        fake.now += 1.0
    expected = 1e6
    assert expected == pacer.rate


async def test_requests_in_flight_are_capped(fake: FakeClock) -> None:
    """With max_concurrency 2, a third turn waits until one of the first two is released.

    Each request is numbered in the order it was let go.
    """
    pacer = Pacer(UNLIMITED, max_concurrency=2, clock=fake.clock, sleep=fake.sleep)
    first, second = await pacer.turn(), await pacer.turn()
    third = asyncio.create_task(pacer.turn())
    for _ in range(20):
        await asyncio.sleep(0)
    held = not third.done()
    pacer.release()  # the first request ended without an answer
    expected = (1, 2, True, 3)
    assert expected == (first, second, held, await third)


async def test_a_turn_given_a_time_limit_gives_up_on_a_longer_pause(fake: FakeClock) -> None:
    """turn(within=3) during a 10 s pause returns 0 after 3 s: the run is not halted."""
    pacer = Pacer(UNLIMITED, clock=fake.clock, sleep=fake.sleep)
    pacer.pause(10.0)
    expected = (0, False)
    assert expected == (await pacer.turn(within=3.0), pacer.halted)
    assert 3.0 <= fake.now - 100.0 < 3.0 + HALT_CHECK


def test_a_turn_given_a_time_limit_gives_up_waiting_for_a_place() -> None:
    """With every place taken, turn(within=2) gives up after 2 s, and a place freed later
    goes to a turn still waiting, not to the one that gave up."""

    async def run() -> tuple[int, float, int]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(UNLIMITED, max_concurrency=1, clock=loop.time, sleep=asyncio.sleep)
        assert await pacer.turn()
        started = loop.time()
        gave_up = await pacer.turn(within=2.0)
        waited = loop.time() - started
        patient = asyncio.create_task(pacer.turn())
        await asyncio.sleep(1.0)
        pacer.release()
        return gave_up, waited, await patient

    gave_up, waited, patient = run_on_virtual_time(run())
    assert (gave_up, round(waited, 2), patient) == (0, 2.0, 2)


async def test_a_turn_cancelled_while_waiting_for_the_rate_frees_its_place() -> None:
    """Cancelling a turn that waits on the rate limiter leaves no request counted in flight."""
    pacer = Pacer(1.0)  # one request per second: the second turn waits in the limiter
    assert await pacer.turn()
    pacer.release()
    waiting = asyncio.create_task(pacer.turn())
    for _ in range(3):  # let it reach the limiter's wait; no real time needs to pass
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    expected = 0
    assert expected == pacer.in_flight


async def _release_times(rate: float, turns: int) -> list[float]:
    """Take ``turns`` turns from a real Pacer; return when each was released, from the start."""
    loop = asyncio.get_running_loop()
    pacer = Pacer(rate)  # real clock and sleep: aiolimiter paces on the loop's clock
    start = loop.time()
    released: list[float] = []
    for _ in range(turns):
        await pacer.turn()
        released.append(loop.time() - start)
        pacer.release()  # the request is done at once; only the rate holds the next one
    return released


async def test_rate_ceiling_over_real_time() -> None:
    """N turns at rate R take about (N - burst)/R seconds, the burst being at most 5% of R."""
    rate, turns = 400.0, 60
    released = await _release_times(rate, turns)
    burst_allowed = 0.05 * rate  # at most 50 ms worth at once
    at_once = sum(1 for t in released if t < 0.005)
    assert at_once <= burst_allowed + 1
    # After the burst the remaining turns come at the rate: (60 - 20) / 400 = 0.1 s.
    expected = (turns - burst_allowed) / rate
    assert 0.8 * expected <= released[-1] <= expected + 0.1


async def test_low_rate_has_no_burst() -> None:
    """At 20/s (5% of a second is one request) the second turn already waits a full 1/R."""
    rate = 20.0
    released = await _release_times(rate, 2)
    assert 0.8 / rate <= released[-1] <= 1 / rate + 0.1


@pytest.mark.parametrize("rate", [2.0, 20.0, 167.0])
def test_a_pause_holds_a_request_already_waiting_for_the_rate(rate: float) -> None:
    """A 429 that pauses the run while a request waits its turn at the rate holds that request
    too: it leaves no sooner than the pause ends."""

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        pacer = new_pacer(ceiling=rate)
        first = await pacer.turn()
        waiting = asyncio.create_task(pacer.turn())  # in the limiter for up to 1 / rate
        await asyncio.sleep(0.001)
        pacer.observe(Observation(throttled=True, retry_after=2.0, ticket=first))
        assert await waiting > 0
        return loop.time()

    assert run_on_virtual_time(scenario()) >= 0.001 + 2.0


# --- the budget, on virtual time against the fake server's own rate window ---------------------
# Each run below is minutes of traffic on a virtual-time loop (see fakeclock.py): the pacer,
# its budget and the retry path are the real ones, and so is the window answering them
# (fake.RateWindow); only HTTP is left out. "Whole windows" are those the run covered from
# start to end, as the benchmark counts them.

DOCUMENTED: dict[str, Any] = {"limit": 3000, "window": 60.0}
TODAY: dict[str, Any] = {"reset_on_every_answer": True, "window_from_first_request": True}
BURSTY: dict[str, Any] = {"live_rate": 10.0, "live_burst_factor": 3.0, "live_burst_seconds": 5.0,
          "live_burst_every": 20.0}  # fmt: skip


async def paced_run(
    seconds: float,
    *,
    latency: float = 0.01,
    pacer_options: dict[str, Any] | None = None,
    **server: Any,
) -> tuple[Server, Pacer]:
    """Run the pacer against a fake window with ``server`` settings for ``seconds``."""
    fake = Server(FakeConfig(**{**DOCUMENTED, **server}), latency=latency)
    live = asyncio.create_task(fake.live()) if server.get("live_rate") else None
    pacer = new_pacer(**(pacer_options or {}))
    await send(fake, pacer, range(1_000_000), seconds=seconds)
    if live is not None:
        live.cancel()
    return fake, pacer


@pytest.mark.parametrize(
    ("style", "mode"),
    [("old", {}), ("new", {}), ("both", TODAY)],
    ids=["documented-old", "documented-new", "today"],
)
def test_whole_windows_are_spent_from_limit_and_remaining(style: str, mode: dict[str, Any]) -> None:
    """No other traffic, 3,000/min: every whole window >= 97% used, no 429 at all.

    Documented answers carry no reset time; with one on every answer (today's fake) as well.
    """
    fake, _ = run_on_virtual_time(paced_run(200.0, clock_skew=20.0, header_style=style, **mode))
    used = [fake.ours(window) for window in (1, 2)]
    assert min(used) >= 0.97 * 3000, used
    assert fake.tally.total("our_429") == 0


def test_steady_live_traffic_keeps_its_share() -> None:
    """Live traffic at 15/s: none of it refused, and the run takes >= 95% of what it leaves."""
    fake, _ = run_on_virtual_time(paced_run(200.0, clock_skew=20.0, live_rate=15.0))
    left = [fake.window_size() - (fake.used(w) - fake.ours(w)) for w in (1, 2)]
    assert [fake.ours(w) / free for w, free in zip((1, 2), left, strict=True)] >= [0.95, 0.95]
    assert fake.tally.total("live_refused") == 0


@pytest.mark.parametrize("mode", [{}, TODAY], ids=["documented", "today"])
def test_bursts_of_live_traffic_are_kept_in_reserve(mode: dict[str, Any]) -> None:
    """10/s, x3 for 5 s every 20 s, a burst ending as each window ends: none refused, and the
    run still takes >= 90% of what the live traffic leaves."""
    fake, _ = run_on_virtual_time(paced_run(200.0, clock_skew=20.0, **BURSTY, **mode))
    shares = [fake.ours(w) / (3000 - (fake.used(w) - fake.ours(w))) for w in (1, 2)]
    assert min(shares) >= 0.9, shares
    assert fake.tally.total("live_refused") == 0


def test_a_wrong_guess_at_the_phase_costs_live_traffic_nothing() -> None:
    """Windows that start with the first request, not on the minute: the clock's minute is a
    wrong hypothesis here, and the live traffic still loses nothing to it."""
    fake, pacer = run_on_virtual_time(
        paced_run(130.0, clock_skew=20.0, window_from_first_request=True, **BURSTY)
    )
    assert pacer._budget.aligned is False
    assert fake.tally.total("live_refused") == 0
    assert fake.ours(1) >= 0.9 * (3000 - (fake.used(1) - fake.ours(1)))


async def _restarted(skew: float, **server: Any) -> tuple[Server, int]:
    fake = Server(FakeConfig(**{**DOCUMENTED, "clock_skew": skew, **server}))
    live = asyncio.create_task(fake.live()) if server.get("live_rate") else None
    await send(fake, new_pacer(), range(1_000_000), seconds=30.0)  # stopped 30 s in ...
    await asyncio.sleep(0.7)  # ... and started again at once: a new process takes a moment
    restart = fake.second()
    await send(fake, new_pacer(), range(1_000_000), seconds=120.0)
    if live is not None:
        live.cancel()
    return fake, restart


@pytest.mark.parametrize("mode", [{}, TODAY], ids=["documented", "today"])
def test_a_restart_mid_window_spends_the_rest_of_it_at_once(mode: dict[str, Any]) -> None:
    """Stopped 30 s in (15 s into a whole window) and restarted: every whole window >= 95%
    used, and no second without a request while the window still had budget."""
    fake, restart = run_on_virtual_time(_restarted(45.0, **mode))
    windows = range(1, 3) if not mode else range(0, 2)
    assert [fake.ours(w) >= 0.95 * 3000 for w in windows] == [True, True]
    idle = [s for s in range(restart + 1, restart + 60) if fake.tally.seconds[s]["our_ok"] == 0]
    busy = [s for s in idle if fake.used(s // 60) < 0.95 * 3000]
    assert busy == []


def test_slow_answers_still_get_the_whole_limit() -> None:
    """200 ms answers at 10,000/min: >= 97% of the limit in every whole window."""
    fake, pacer = run_on_virtual_time(paced_run(150.0, latency=0.2, limit=10_000, clock_skew=30.0))
    assert min(fake.ours(1), fake.ours(2)) >= 9700
    assert pacer.concurrency > 0.2 * 10_000 / 60  # Little's law: the rate x the round trip


def test_max_share_caps_what_the_run_takes() -> None:
    """--max-share 0.5: the run takes half of each window and leaves the rest."""
    fake, _ = run_on_virtual_time(
        paced_run(130.0, clock_skew=20.0, pacer_options={"max_share": 0.5})
    )
    # Give or take the few requests in flight as one window turns into the next.
    assert 0.45 * 3000 <= fake.ours(1) <= 0.5 * 3000 + 5


@pytest.mark.parametrize("reset", ["+86400", "1e300"])
def test_a_window_that_claims_to_be_spent_for_a_day_holds_nothing_long(reset: str) -> None:
    """remaining 0 and a reset a day (or 1e300) away on every answer: the run probes every
    few seconds instead of stopping until a signal."""

    def hostile(headers: dict[str, str]) -> dict[str, str]:
        value = str(EPOCH + 86_400) if reset == "+86400" else reset
        return headers | {"X-Rate-Limit-Remaining": "0", "X-RateLimit-Remaining": "0",
                          "X-Rate-Limit-Reset": value, "X-RateLimit-Reset": value}  # fmt: skip

    async def run() -> Server:
        fake = Server(FakeConfig(**DOCUMENTED, clock_skew=20.0), headers=hostile)
        await send(fake, new_pacer(), range(1_000_000), seconds=60.0)
        return fake

    fake = run_on_virtual_time(run())
    busy = sorted(s for s, row in fake.tally.seconds.items() if row["our_ok"])
    gaps = [later - earlier for earlier, later in itertools.pairwise(busy)]
    assert len(busy) >= 15
    assert max(gaps) <= 4


def test_the_expected_rate_is_right_after_the_first_minute() -> None:
    """What the pacer expects whole windows to give is within 10% of what they gave."""

    async def run() -> tuple[float | None, Server]:
        fake = Server(FakeConfig(**DOCUMENTED, clock_skew=20.0, **BURSTY))
        live = asyncio.create_task(fake.live())
        pacer = new_pacer()
        task = asyncio.create_task(send(fake, pacer, range(1_000_000), seconds=220.0))
        await asyncio.sleep(60.0)
        expected = pacer.expected_rate
        await task
        live.cancel()
        return expected, fake

    expected, fake = run_on_virtual_time(run())
    achieved = (fake.ours(1) + fake.ours(2) + fake.ours(3)) / 180
    assert expected is not None
    assert abs(expected - achieved) <= 0.1 * achieved


# --- end to end: the real CLI against `bulkdelete fake-server` over loopback ---------------------
# Windows are the documented minute; each test sets the fake's clock (--clock-skew) so that the
# run starts a few seconds before a minute turns, and reads the fake's per-second timeline.


def _server_clock(start_at: float) -> tuple[float, float]:
    """Return (skew, minute): a clock ``start_at`` s past a minute now, and that minute's end."""
    now = time.time()
    skew = start_at - now % 60
    return skew, now + skew - start_at + 60


def _wait_for(server_time: float, skew: float) -> None:
    time.sleep(max(0.0, server_time - (time.time() + skew)))


def _uids(path: Path, count: int, prefix: str) -> Path:
    path.write_text("".join(f"{prefix}-{n}\n" for n in range(count)), encoding="utf-8")
    return path


def _delete(base_url: str, source: Path, audit: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", "delete", str(source), "--base-url", base_url,
         "--audit", str(audit), "--no-progress", "--log-level", "warning",
         "--batch-size", "1", *extra],  # one request per user: the windows count requests
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(),
    )  # fmt: skip


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    return process.returncode


def _per_second(stats: dict[str, Any], key: str, start: int, end: int) -> list[int]:
    timeline = stats["timeline"]
    return [timeline.get(str(second), {}).get(key, 0) for second in range(start, end)]


def test_the_cli_spends_a_window_it_learns_from_limit_and_remaining(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Documented answers, both header spellings: the rest of a minute is spent without a 429,
    and the next minute is paced over its length, not burst and not stalled."""
    skew, minute = _server_clock(53.0)
    servers = {
        style: fake_server("--all-exist", "--limit", "60", "--header-style", style,
                           "--clock-skew", f"{skew:.3f}")
        for style in ("old", "new")
    }  # fmt: skip
    runs = [
        _delete(server.base_url, _uids(tmp_path / f"{style}.txt", 300, style),
                tmp_path / f"{style}.jsonl")
        for style, server in servers.items()
    ]  # fmt: skip
    _wait_for(minute + 4, skew)
    assert [_stop(run) for run in runs] == [143, 143]
    for server in servers.values():
        stats = server.stats()
        assert stats["rejected_over_limit"] == 0
        first = sum(_per_second(stats, "our_ok", 0, 60))
        assert first >= 0.9 * 60 * 0.98  # what the first minute had left when the run began
        assert 2 <= sum(_per_second(stats, "our_ok", 60, 64)) <= 12  # about 1/s


def test_a_restarted_cli_spends_the_rest_of_the_window_at_once(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Stopped mid-minute and resumed at once: the new process keeps sending through the
    minute (no second without a request while budget remains) and gets no 429."""
    skew, minute = _server_clock(51.0)
    server = fake_server("--all-exist", "--limit", "90", "--clock-skew", f"{skew:.3f}")
    source, audit = _uids(tmp_path / "in.txt", 300, "r"), tmp_path / "a.jsonl"
    first = _delete(server.base_url, source, audit)
    _wait_for(minute - 5, skew)
    assert _stop(first) == 143
    resumed = _delete(server.base_url, source, audit, "--resume")
    _wait_for(minute + 1, skew)
    assert _stop(resumed) == 143
    stats = server.stats()
    assert stats["rejected_over_limit"] == 0
    assert sum(_per_second(stats, "our_ok", 0, 60)) >= 0.9 * 90 * 0.98
    # The new process needs a moment to start; from then on, every second has requests.
    assert 0 not in _per_second(stats, "our_ok", 57, 60)


def test_a_server_that_refuses_everything_ends_the_run(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """429 with Retry-After: 86400 on every DELETE: each UID fails within --max-retry-time with a
    reason, and 429s alone for --max-outage stop the run with exit 3 and RATE_LIMITED."""
    server = fake_server("--all-exist", "--throttle-rate", "1", "--fault-retry-after", "86400")
    audit = tmp_path / "a.jsonl"
    began = time.monotonic()
    done = run_cli(
        "delete", str(_uids(tmp_path / "in.txt", 400, "x")), "--base-url", server.base_url,
        "--audit", str(audit), "--no-progress", "--max-pause", "1", "--max-retry-time", "2",
        "--max-outage", "6", "--batch-size", "1",
    )  # fmt: skip
    took = time.monotonic() - began
    assert done.returncode == 3, done.stderr
    assert "RATE_LIMITED" in done.stdout + done.stderr
    assert took < 20
    rows = row_records(audit)
    assert {(r["outcome"], r["error_code"]) for r in rows} == {("failed", "ERR_TOO_MANY_REQUESTS")}
    reasons = [r["note"] for r in rows]
    # Each UID gave up within its own bound; only those retrying as the run stopped say that.
    assert sum("--max-retry-time" in note for note in reasons) > 0.8 * len(rows)
    assert all(
        "--max-retry-time" in n or n == "the run stopped before its next retry" for n in reasons
    )
