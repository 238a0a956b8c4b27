"""Run-wide pacing: how fast to send, how many at once, and when to stop sending for a while.

One ``Pacer`` serves the whole run. Every attempt (retries included) waits for ``turn()``, which
numbers it, before it is sent, and reports its answer to ``observe()``. From the answers it learns:

- **The budget** (``budget.Budget``, whose docstring says how): the window's limit, what remains
  of it, when it ends and how much other clients of the app use. The rate is set so that what
  this run may take of the window lasts until its end; when nothing is left, requests wait for
  the window to turn over, probing it now and then rather than trusting a header to say when.
  Every request is numbered, with the time it left and how many were in flight then, so that an
  answer's remaining count can be read against our own requests: a rise bigger than those still
  in flight is a new window, a fall bigger than ours is other clients' use.
- **A restart mid-window** (scenario 4 of the benchmark): the new process has no phase, so it
  plans its pace to the server clock's next minute (from ``Date``) while the reserve for other
  clients is counted to the latest possible end: a wrong guess costs only the run's own pace,
  never a live request. The budget's docstring has the details.
- **Throttling.** A 429 pauses every worker for its ``Retry-After`` (never more than
  ``max_pause``), and the rate is cut for a share of 429s, then recovers (``pushback.Throttle``).
  A fixed ``--rate`` is only a ceiling.
- **Concurrency** follows Little's law: requests in flight = rate x round trip (with room), so a
  slow API still gets its rate and a fast one does not open hundreds of sockets.
- **Outages** (``pushback.Outage``): missing or 5xx answers in a row mean the server is down: the
  run pauses with growing backoff and lets one probe through at a time. An outage longer than
  ``max_outage``, or 429s and nothing else for that long (``pushback.Refusals``), halts the
  pacer, which stops the run.

No header can hold the run longer than ``max_pause`` at a time, and a spent window is probed
at least every few seconds, so every wait is bounded and shows in ``paused_for``.

The rate itself is kept by ``cadence.Cadence`` on aiolimiter, without bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bulkdelete.budget import Budget, Plan
from bulkdelete.cadence import Cadence
from bulkdelete.pushback import Outage, Refusals, Throttle
from bulkdelete.serverclock import Sighting
from bulkdelete.settings import DEFAULTS

HALT_CHECK = 0.25  # longest a waiting request takes to notice a halt, in seconds
DEFAULT_THROTTLE_PAUSE = 1.0  # a 429 without Retry-After still pauses the run this long
_MIN_RATE = 0.5  # requests per second: never stall completely while budget remains
# Below this rate requests are spaced by the pacer's own waits, which see a new plan within
# HALT_CHECK, not by aiolimiter, whose waiters would keep the old rate for up to 1/rate.
_SLOW_RATE = 4.0
_MIN_HORIZON = 0.05  # seconds: what is left this close to a window's end goes at the ceiling
_REPLAN = 0.05  # seconds: a waiting request replans this often (a window may have turned over)
_FLIGHT_ROOM = 1.5  # in flight = rate x round trip x this
_FIRST_ROUND_TRIP = 0.2  # assumed until measured
_ROUND_TRIP_WEIGHT = 0.1
_GRANTS_KEPT = 8192  # send times kept to place answers; older answers are placed by round trip


# Not frozen: one per answer, and a frozen one sets each field by ``object.__setattr__``.
@dataclass(slots=True)
class Observation:
    """What one answer tells the pacer."""

    throttled: bool = False  # a 429
    unavailable: bool = False  # no answer at all, or a 5xx
    retry_after: float | None = None
    limit: int | None = None  # requests per window, from the headers
    remaining: int | None = None
    reset_at: float | None = None  # Unix time the window ends (server clock)
    server_date: float | None = None  # Unix time of the answer's Date header
    round_trip: float | None = None  # seconds the request took
    ticket: int = 0  # the number ``turn`` gave the request; 0 when unknown


class Pacer:
    """A learned rate (requests per second) under a ceiling, a run-wide pause, and breakers."""

    def __init__(
        self,
        ceiling: float,
        *,
        max_concurrency: int = DEFAULTS.concurrency,
        max_share: float = DEFAULTS.max_share,
        max_outage: float = DEFAULTS.max_outage,
        max_pause: float = DEFAULTS.max_pause,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._ceiling = ceiling
        self._max_concurrency = max_concurrency
        self._max_pause = max_pause
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._budget = Budget(max_share=max_share)
        self._plan: Plan | None = None
        self._planned_at = -math.inf
        self._spent_since: float | None = None  # when the window was last found spent
        self._last_probe = -math.inf
        self._unlimited_next = False  # the next request is paced already (a probe, a slow rate)
        self._throttle = Throttle(clock())
        self._cadence = Cadence(ceiling, clock)
        self._round_trip = _FIRST_ROUND_TRIP
        self._sent = 0
        self._unanswered = 0  # numbered requests not yet observed or released
        # (when, requests then unanswered) of the latest requests, by number
        self._grants: deque[tuple[float, int]] = deque(maxlen=_GRANTS_KEPT)
        self._in_flight = 0  # requests holding a place: numbered, or waiting for the rate
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._resume_at = 0.0
        self._halted = False
        self._outage = Outage(max_outage)
        self._refusals = Refusals(max_outage)
        self._probing = False
        self.pauses = 0
        self.throttled_answers = 0  # 429s seen: the run's summary and metrics report them

    async def turn(self, *, within: float | None = None) -> int:
        """Wait until one more request may be sent; return its number, or 0 when it may not.

        Waits for a run-wide pause to end, for a place among the requests in flight, for budget
        in the window, and for the rate; during an outage, only one request at a time goes
        through, as a probe. Returns 0 at once when the run is halted, and once ``within``
        seconds have passed without a turn. A non-zero result must be followed by ``observe``
        (or ``release``).
        """
        deadline = None if within is None else self._clock() + within
        if not await self._wait_for_place(deadline):
            return 0
        self._in_flight += 1
        if self._outage.since is not None:
            self._probing = True
        paced, self._unlimited_next = self._unlimited_next, False
        try:
            if not paced:
                await self._cadence.take()
            # A 429 may have paused the run while this request waited for the rate: it waits
            # the pause out too, and then for its turn at the rate once more, so the requests
            # that waited through the pause do not leave in one burst at its end.
            while self._resume_at > self._clock() and not self._halted:
                if deadline is not None and self._resume_at >= deadline:
                    self._free_place()
                    return 0
                await self._sleep(min(self._resume_at - self._clock(), HALT_CHECK))
                if self._resume_at <= self._clock():
                    await self._cadence.take()
        except BaseException:  # cancelled while waiting for the rate: give the place back
            self._free_place()
            raise
        if self._halted:
            self._free_place()
            return 0
        self._sent += 1
        self._cadence.granted_at = now = self._clock()
        if self._budget.limit is not None:  # only answers with a limit are read against them
            self._grants.append((now, self._unanswered))
        self._unanswered += 1
        return self._sent

    async def _wait_for_place(self, deadline: float | None) -> bool:
        """Wait for everything but the rate; return False when halted or past ``deadline``."""
        while not self._halted:
            if self._check_bounds():
                break
            now = self._clock()
            if deadline is not None and now >= deadline:
                return False
            delay = self._resume_at - now
            if delay <= 0 and self._outage.since is not None and self._probing:
                delay = HALT_CHECK  # another request is probing the server: wait for its answer
            if delay <= 0 and self._in_flight >= self.concurrency:
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                if deadline is None:
                    await waiter
                else:  # on time-out the waiter is cancelled, and ``release`` passes it by
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter, max(0.0, deadline - now))
                continue
            if delay <= 0:
                delay = self._budget_wait(now)
            if delay <= 0:
                return True
            # Sleep in short steps so a halt during a long pause is seen quickly.
            await self._sleep(min(delay, HALT_CHECK))
        return False

    def _budget_wait(self, now: float) -> float:
        """Return how long the budget holds the next request (0: send it now)."""
        if now - self._planned_at >= _REPLAN:
            self._rerate()  # the window may have turned over while nothing was answered
        plan = self._plan
        if plan is None or plan.spendable >= 1:
            if self.rate >= _SLOW_RATE:
                return 0.0  # aiolimiter paces it
            due = self._cadence.granted_at + 1 / self.rate
        else:
            due = self._probe_due(plan)
            if now >= due:
                self._last_probe = now  # one request into the spent window, to see if it turned
        if now < due:
            return due - now
        self._unlimited_next = True
        return 0.0

    def _probe_due(self, plan: Plan) -> float:
        """When the next probe of a spent window may go: at its next chance, or after a gap."""
        spent_since = self._clock() if self._spent_since is None else self._spent_since
        since = max(spent_since, self._last_probe)
        # Never a second probe before the first could be answered.
        spacing = self._last_probe + 2 * self._round_trip
        return max(min(plan.next_chance, since + plan.probe_gap), spacing)

    def release(self) -> None:
        """Free the place of a request that ended without an answer to observe."""
        self._unanswered -= 1
        self._planned_at = -math.inf  # replan at the next turn: a probe may have ended here
        self._free_place()

    def _free_place(self) -> None:
        self._in_flight -= 1
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def observe(self, seen: Observation) -> None:
        """Learn from one answer (and free its place among the requests in flight)."""
        self._unanswered -= 1
        self._free_place()
        was_probe, self._probing = self._probing, False
        now = self._clock()
        if seen.round_trip is not None:
            self._round_trip += _ROUND_TRIP_WEIGHT * (seen.round_trip - self._round_trip)
        if seen.throttled:
            pause = seen.retry_after if seen.retry_after is not None else DEFAULT_THROTTLE_PAUSE
            self.pause(min(pause, self._max_pause))
            self.throttled_answers += 1
        if self._refusals.answered(throttled=seen.throttled, unavailable=seen.unavailable, now=now):
            self.halt()
        self._throttle.answered(throttled=seen.throttled)
        if seen.limit is not None and seen.remaining is not None and seen.ticket > 0:
            self._budget.observe(self._sighting(seen, seen.limit, seen.remaining, now))
        backoff = self._outage.answered(unavailable=seen.unavailable, was_probe=was_probe, now=now)
        if self._outage.tripped:
            self.halt()
        elif backoff is not None and not self._refusals.tripped:
            self.pause(backoff)
        self._rerate()

    def _sighting(self, seen: Observation, limit: int, remaining: int, now: float) -> Sighting:
        """Place an answer on this pacer's clock: when its request left, and what was in flight."""
        index = seen.ticket - (self._sent - len(self._grants)) - 1
        if 0 <= index < len(self._grants):
            sent, before = self._grants[index]
        else:  # too old to be kept: its round trip tells when it left; assume it went alone
            sent, before = now - (seen.round_trip or 0.0), 0
        return Sighting(
            limit=limit,
            remaining=remaining,
            ticket=seen.ticket,
            sent=sent,
            received=now,
            in_flight_before=before,
            reset_at=seen.reset_at,
            server_date=seen.server_date,
            wall_offset=self._wall_clock() - now,
        )

    def _rerate(self) -> None:
        now = self._clock()
        factor = self._throttle.adjust(now)
        self._planned_at = now
        budget = self._budget
        plan = self._plan = None if budget.limit is None else budget.plan(now, self._sent)
        rate = self._ceiling
        if plan is not None and plan.spendable < 1:
            if self._spent_since is None:
                self._spent_since = now
            return  # requests wait for the window (``_budget_wait``); the rate is moot till then
        self._spent_since = None
        if plan is not None:
            # Spend what this window leaves the run by its end: no sooner, no later.
            rate = min(rate, max(plan.spendable / max(plan.horizon, _MIN_HORIZON), _MIN_RATE))
        self._cadence.set(max(_MIN_RATE, rate * factor))

    def _check_bounds(self) -> bool:
        """Halt the run once it has had no usable answer for ``max_outage``; tell whether it has.

        (A run that gets only 429s for that long is halted by ``observe``.)
        """
        if self._outage.trips(self._clock()):
            self.halt()
        return self._outage.tripped or self._refusals.tripped

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later pause only ever extends it)."""
        resume_at = self._clock() + seconds
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses += 1

    def halt(self) -> None:
        """Make every ``turn`` return 0 from now on: the run is stopping."""
        self._halted = True
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)
        self._waiting.clear()

    @property
    def rate(self) -> float:
        """Requests per second the run sends at now."""
        return self._cadence.rate

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
    def outage_exceeded(self) -> bool:
        """True once the server gave no usable answer for ``max_outage``: the run halted."""
        return self._outage.tripped

    @property
    def refusal_exceeded(self) -> bool:
        """True once every answer was a 429 for ``max_outage``: the run halted."""
        return self._refusals.tripped

    @property
    def in_outage(self) -> bool:
        """True while the server looks down (attempts then do not count against a UID)."""
        return self._outage.since is not None

    @property
    def paused_for(self) -> float:
        """Seconds until requests may flow again (a pause, or a spent window); 0 when not held."""
        now = self._clock()
        held = self._resume_at - now
        plan = self._plan
        if plan is not None and plan.spendable < 1:
            held = max(held, self._probe_due(plan) - now)
        return max(0.0, held)

    @property
    def limit_per_minute(self) -> int | None:
        """The limit the headers advertise, per minute, once an answer carried it."""
        limit = self._budget.limit
        return None if limit is None else round(limit * 60 / self._budget.period)

    @property
    def budget_left(self) -> int | None:
        """What remains of the current window: the latest answer's count less our sends since."""
        return self._budget.left(self._clock(), self._sent)

    @property
    def expected_rate(self) -> float | None:
        """Requests per second this run can keep up over whole windows, once a limit is known.

        What a window leaves it (its share, less other clients' use and the reserve) over the
        window's length, under the ceiling and what the requests in flight allow.
        """
        per_window = self._budget.per_window()
        if per_window is None:
            return None
        capacity = self._max_concurrency / max(self._round_trip, 1e-3)
        return min(self._ceiling, capacity, per_window / self._budget.period)
