"""Run-wide pacing: how fast to send, how many at once, and when to stop sending for a while.

One ``Pacer`` serves the whole run. Every attempt (retries included) waits for ``turn()``
before it is sent and reports its answer to ``observe()``. From the answers it learns:

- **The budget.** CometChat's limit is a fixed window (per minute) shared with the customer's
  live app, and every answer says the limit, what remains and when the window resets. The rate
  is set so that what remains, less a reserve of ``(1 - max_share)`` of the limit and less what
  other clients are expected to use until the reset, lasts until the reset. Other clients'
  use is what the remaining budget lost beyond our own sends: a run yields to them at once.
- **Throttling.** A 429 pauses every worker until ``Retry-After`` and halves the rate; the
  rate then recovers gradually. A fixed ``--rate`` is only a ceiling: budget and 429s still apply.
- **Concurrency** follows Little's law: requests in flight = rate x round trip (with room), so a
  slow API still gets its rate and a fast one does not open hundreds of sockets.
- **Outages.** ``OUTAGE_THRESHOLD`` missing or 5xx answers in a row mean the server is down: the
  run pauses with growing backoff and lets one probe through at a time; an outage longer than
  ``max_outage`` sets ``outage_exceeded`` and halts the pacer, which stops the run.

aiolimiter cannot change its rate, so a new limiter replaces the old one when the rate moves
by more than 2%. Its bucket holds 50 ms of requests and is filled before first use, so neither
a run nor a new rate starts with a burst.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from bulkdelete.settings import DEFAULTS

HALT_CHECK = 0.25  # longest a waiting request takes to notice a halt, in seconds
OUTAGE_THRESHOLD = 8  # unavailable answers in a row that mean "down", not "unlucky"
DEFAULT_THROTTLE_PAUSE = 1.0  # a 429 without Retry-After still pauses the run this long
MAX_RETRY_AFTER = 300.0
DEFAULT_WINDOW = 60.0  # CometChat's limits are per minute
_BURST_SECONDS = 0.05
_OUTAGE_FIRST_PAUSE = 0.5
_OUTAGE_MAX_PAUSE = 30.0
_RERATE_TOLERANCE = 0.02  # a rate change smaller than this keeps the current limiter
_RECOVERY_PER_SECOND = 0.1  # the rate regains 10% of itself per second
_FACTOR_INTERVAL = 1.0  # seconds between two adjustments for 429s
_MIN_FACTOR = 1 / 64
_MIN_RATE = 0.5  # requests per second: never stall completely while budget remains
_MIN_HORIZON = 0.5  # seconds; the reset time is only known to the second
_RESET_ROUNDING = 0.5  # seconds a whole-second reset time overstates the window's end, on average
_FLIGHT_ROOM = 1.5  # in flight = rate x round trip x this
_FIRST_ROUND_TRIP = 0.2  # assumed until measured
_ROUND_TRIP_WEIGHT = 0.1


@dataclass(frozen=True, slots=True)
class Observation:
    """What one answer tells the pacer."""

    throttled: bool = False  # a 429
    unavailable: bool = False  # no answer at all, or a 5xx
    retry_after: float | None = None
    limit: int | None = None  # requests per window, from the headers
    remaining: int | None = None
    reset_at: float | None = None  # unix time the window ends
    round_trip: float | None = None  # seconds the request took


class _Budget:
    """The current rate-limit window as the headers describe it, and who used it."""

    def __init__(self) -> None:
        self.window = DEFAULT_WINDOW
        self._window_known = False  # True once two resets gave its exact length
        self._longest_wait = 0.0  # the longest time-to-reset seen in the first window
        self.reset_at: float | None = None
        self.limit: int | None = None
        self.remaining: int | None = None
        self.ours = 0  # our answers that counted in this window
        self.others_rate = 0.0  # requests/s other clients use, learned

    def update(self, seen: Observation, *, now: float, in_flight: int) -> None:
        if seen.limit is None or seen.remaining is None or seen.reset_at is None:
            return
        if self.reset_at is not None and seen.reset_at > self.reset_at + 0.5:
            # A new window: its length is the step between resets (windows may be skipped).
            step = seen.reset_at - self.reset_at
            self.window = min(self.window, step) if self._window_known else step
            self._window_known = True
            self.ours = 0
        elif self.reset_at is not None and seen.reset_at < self.reset_at - 0.5:
            return  # a late answer from the previous window
        if not self._window_known:
            # Until a reset is seen, the window is at least the longest wait for one.
            self._longest_wait = max(self._longest_wait, seen.reset_at - now)
            self.window = min(DEFAULT_WINDOW, max(self._longest_wait, 1.0))
        self.reset_at, self.limit, self.remaining = seen.reset_at, seen.limit, seen.remaining
        self.ours += 1
        elapsed = self.window - (seen.reset_at - now)
        if elapsed >= 2 * _MIN_HORIZON:
            # Whatever left the budget beyond our own requests was other clients' doing.
            others = max(0, seen.limit - seen.remaining - self.ours - in_flight)
            self.others_rate = others / elapsed

    def rate(self, *, now: float, max_share: float) -> float | None:
        """Return the rate that spends what is left of this window by its end, or None."""
        if self.reset_at is None or self.limit is None or self.remaining is None:
            return None
        # Reset times come in whole seconds, rounded up: the window ends half a second earlier
        # on average. And the clock or the header may be off: never plan beyond one window.
        horizon = min(max(_MIN_HORIZON, self.reset_at - now - _RESET_ROUNDING), self.window)
        reserve = (1 - max_share) * self.limit
        spendable = self.remaining - reserve - self.others_rate * horizon
        full = self.limit / self.window  # never faster than the advertised average
        return max(0.0, min(full, spendable / horizon))


class Pacer:
    """A learned rate (requests per second) under a ceiling, a run-wide pause, and a breaker."""

    def __init__(
        self,
        ceiling: float,
        *,
        max_concurrency: int = DEFAULTS.concurrency,
        max_share: float = DEFAULTS.max_share,
        max_outage: float = DEFAULTS.max_outage,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._ceiling = ceiling
        self._max_concurrency = max_concurrency
        self._max_share = max_share
        self._max_outage = max_outage
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._budget = _Budget()
        self._factor = 1.0
        self._factor_at = clock()
        self._interval_answers = self._interval_throttled = 0
        self.rate = ceiling
        self._limiter = _limiter(ceiling)
        self._primed: AsyncLimiter | None = None  # the limiter whose bucket was filled
        self._round_trip = _FIRST_ROUND_TRIP
        self._in_flight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._resume_at = 0.0
        self._halted = False
        self._unavailable_in_a_row = 0
        self._outage_since: float | None = None
        self._outage_pause = _OUTAGE_FIRST_PAUSE
        self._probing = False
        self.pauses = 0
        self.outage_exceeded = False

    async def turn(self) -> bool:
        """Wait until one more request may be sent; return False (at once) when halted.

        Waits for a run-wide pause to end, for a place among the requests in flight, and for
        the rate; during an outage, only one request at a time goes through, as a probe. A
        True result must be followed by ``observe`` (or ``release``) for that request.
        """
        while not self._halted:
            if self._outage_since is not None and self._check_outage_bound():
                break
            delay = self._resume_at - self._clock()
            if delay <= 0 and self._outage_since is not None and self._probing:
                delay = HALT_CHECK  # another request is probing the server: wait for its answer
            if delay > 0:
                # Sleep in short steps so a halt during a long pause is seen quickly.
                await self._sleep(min(delay, HALT_CHECK))
            elif self._in_flight >= self.concurrency:
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                await waiter
            else:
                break
        if self._halted:
            return False
        self._in_flight += 1
        if self._outage_since is not None:
            self._probing = True
        try:
            limiter = self._limiter
            if limiter is not self._primed:
                # aiolimiter's bucket starts empty and would let a burst through: taking its
                # whole capacity first (granted at once, it is empty) makes every request,
                # the first included, wait its turn at the new rate.
                self._primed = limiter
                await limiter.acquire(limiter.max_rate)
            await limiter.acquire()
        except BaseException:  # cancelled while waiting for the rate: give the place back
            self.release()
            raise
        if self._halted:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Free the place of a request that ended without an answer to observe."""
        self._in_flight -= 1
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def observe(self, seen: Observation) -> None:
        """Learn from one answer (and free its place among the requests in flight)."""
        self.release()
        was_probe, self._probing = self._probing, False
        if seen.round_trip is not None:
            self._round_trip += _ROUND_TRIP_WEIGHT * (seen.round_trip - self._round_trip)
        if seen.throttled:
            pause = seen.retry_after if seen.retry_after is not None else DEFAULT_THROTTLE_PAUSE
            self.pause(min(pause, MAX_RETRY_AFTER))
            self._interval_throttled += 1
        self._interval_answers += 1
        self._budget.update(seen, now=self._wall_clock(), in_flight=self._in_flight)
        self._track_outage(seen, was_probe=was_probe)
        self._rerate()

    def _adjust_factor(self) -> None:
        """Once a second: cut the rate by half the share of answers that were 429s, then let it
        regain 10% a second.

        Cutting in proportion to the 429s (not halving on each one) slows a run that really
        overruns its limit (most answers refused) to half within a second or two, while a
        server that refuses a few percent at random costs nothing lasting.
        """
        now = self._clock()
        elapsed = now - self._factor_at
        if elapsed < _FACTOR_INTERVAL:
            return
        share = self._interval_throttled / self._interval_answers if self._interval_answers else 0
        recovery = (1 + _RECOVERY_PER_SECOND) ** elapsed
        self._factor = min(1.0, max(_MIN_FACTOR, self._factor * (1 - share / 2) * recovery))
        self._factor_at = now
        self._interval_answers = self._interval_throttled = 0

    def _rerate(self) -> None:
        self._adjust_factor()
        rate = self._ceiling
        budget_rate = self._budget.rate(now=self._wall_clock(), max_share=self._max_share)
        if budget_rate is not None:
            if budget_rate <= 0:
                # Nothing left to spend in this window: wait for the next one.
                self.pause(max(_MIN_HORIZON, (self._budget.reset_at or 0) - self._wall_clock()))
            rate = min(rate, max(budget_rate, _MIN_RATE))
        rate = max(_MIN_RATE, rate * self._factor)
        if abs(rate - self.rate) > _RERATE_TOLERANCE * self.rate:
            self.rate = rate
            self._limiter = _limiter(rate)

    def _track_outage(self, seen: Observation, *, was_probe: bool) -> None:
        if not seen.unavailable:
            self._unavailable_in_a_row = 0
            self._outage_since = None
            self._outage_pause = _OUTAGE_FIRST_PAUSE
            return
        self._unavailable_in_a_row += 1
        if self._unavailable_in_a_row < OUTAGE_THRESHOLD:
            return
        if self._outage_since is None:
            self._outage_since = self._clock()
        elif not was_probe:
            return  # requests sent before the outage was seen: only probes move the backoff
        if self._check_outage_bound():
            return
        # Never pause past the outage bound: the run must stop on time, not a backoff later.
        left = self._max_outage - (self._clock() - self._outage_since)
        self.pause(min(self._outage_pause, left))
        self._outage_pause = min(self._outage_pause * 2, _OUTAGE_MAX_PAUSE)

    def _check_outage_bound(self) -> bool:
        """Halt the run once the outage has lasted ``max_outage``; tell whether it has."""
        since = self._outage_since
        if since is not None and self._clock() - since >= self._max_outage:
            self.outage_exceeded = True
            self.halt()
        return self.outage_exceeded

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later pause only ever extends it)."""
        resume_at = self._clock() + seconds
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses += 1

    def halt(self) -> None:
        """Make every ``turn`` return False from now on: the run is stopping."""
        self._halted = True
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)
        self._waiting.clear()

    @property
    def concurrency(self) -> int:
        """Requests allowed in flight now: rate x round trip (Little's law), with room."""
        wanted = math.ceil(self.rate * self._round_trip * _FLIGHT_ROOM) + 1
        return max(1, min(self._max_concurrency, wanted))

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self._in_flight

    @property
    def halted(self) -> bool:
        """True once ``halt`` was called."""
        return self._halted

    @property
    def in_outage(self) -> bool:
        """True while the server looks down (attempts then do not count against a UID)."""
        return self._outage_since is not None

    @property
    def paused_for(self) -> float:
        """Seconds until requests may flow again; 0 when not paused."""
        return max(0.0, self._resume_at - self._clock())

    @property
    def limit_per_minute(self) -> int | None:
        """The limit the headers advertise, per minute, once an answer carried it."""
        limit = self._budget.limit
        return None if limit is None else round(limit * 60 / self._budget.window)

    @property
    def budget_left(self) -> int | None:
        """What the last answer said remains of the current window."""
        return self._budget.remaining


def _limiter(rate: float) -> AsyncLimiter:
    burst = max(1.0, rate * _BURST_SECONDS)
    return AsyncLimiter(burst, burst / rate)
