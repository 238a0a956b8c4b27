"""Run-wide pacing: a rate ceiling, a pause every request obeys, and an outage breaker.

One ``Pacer`` serves the whole run. Every attempt (retries included) waits for ``turn()``
before it is sent, and every answer is shown to ``observe()``. So a 429's ``Retry-After``
stops every worker, not just the one that saw it, and a server that is down is met by the
whole run backing off together: after ``OUTAGE_THRESHOLD`` answers in a row that were
missing or 5xx, the run pauses with growing backoff and lets a single probe request through
at a time until one succeeds. An outage longer than ``max_outage`` seconds sets
``outage_exceeded`` and halts the pacer, which stops the run.

aiolimiter's bucket starts empty and lets ``max_rate`` requests through at once, so the bucket is
sized to 50 ms worth of requests: a small burst keeps timer overhead low at high rates without
letting a run start with a flood.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

_BURST_SECONDS = 0.05
HALT_CHECK = 0.25  # longest a waiting request takes to notice a halt, in seconds
OUTAGE_THRESHOLD = 8  # unavailable answers in a row that mean "down", not "unlucky"
_OUTAGE_FIRST_PAUSE = 0.5
_OUTAGE_MAX_PAUSE = 30.0
DEFAULT_THROTTLE_PAUSE = 1.0  # a 429 without Retry-After still pauses the run this long
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class Observation:
    """What one answer tells the pacer."""

    throttled: bool = False  # a 429
    unavailable: bool = False  # no answer at all, or a 5xx
    retry_after: float | None = None


class Pacer:
    """A rate ceiling (requests per second), a run-wide pause, and an outage breaker."""

    def __init__(
        self,
        rate: float,
        *,
        max_outage: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        burst = max(1.0, rate * _BURST_SECONDS)
        self._limiter = AsyncLimiter(burst, burst / rate)
        self._max_outage = max_outage
        self._clock = clock
        self._sleep = sleep
        self._resume_at = 0.0
        self._halted = False
        self._unavailable_in_a_row = 0
        self._outage_since: float | None = None
        self._outage_pause = _OUTAGE_FIRST_PAUSE
        self._probing = False
        self.pauses = 0
        self.outage_exceeded = False

    async def turn(self) -> bool:
        """Wait until a request may be sent; return False (at once) when the run is halted.

        Waits for a run-wide pause to end and for the rate ceiling; during an outage, only one
        request at a time is let through, as a probe.
        """
        while not self._halted:
            delay = self._resume_at - self._clock()
            if delay <= 0 and self._outage_since is not None and self._probing:
                delay = HALT_CHECK  # another request is probing the server: wait for its answer
            if delay <= 0:
                break
            # Sleep in short steps so a halt during a long pause is seen quickly.
            await self._sleep(min(delay, HALT_CHECK))
        if self._halted:
            return False
        if self._outage_since is not None:
            self._probing = True
        await self._limiter.acquire()
        return not self._halted

    def observe(self, seen: Observation) -> None:
        """Learn from one answer: pause the run for a 429, track an outage."""
        self._probing = False
        if seen.throttled:
            pause = seen.retry_after if seen.retry_after is not None else DEFAULT_THROTTLE_PAUSE
            self.pause(min(pause, MAX_RETRY_AFTER))
        if not seen.unavailable:
            self._unavailable_in_a_row = 0
            self._outage_since = None
            self._outage_pause = _OUTAGE_FIRST_PAUSE
            return
        self._unavailable_in_a_row += 1
        if self._unavailable_in_a_row < OUTAGE_THRESHOLD:
            return
        now = self._clock()
        if self._outage_since is None:
            self._outage_since = now
        elif now - self._outage_since >= self._max_outage:
            self.outage_exceeded = True
            self.halt()
        self.pause(self._outage_pause)
        self._outage_pause = min(self._outage_pause * 2, _OUTAGE_MAX_PAUSE)

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later pause only ever extends it)."""
        resume_at = self._clock() + seconds
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses += 1

    def halt(self) -> None:
        """Make every ``turn`` return False from now on: the run is stopping."""
        self._halted = True

    @property
    def halted(self) -> bool:
        """True once ``halt`` was called."""
        return self._halted

    @property
    def in_outage(self) -> bool:
        """True while the server looks down (attempts then do not count against a UID)."""
        return self._outage_since is not None

    @property
    def outage_seconds(self) -> float:
        """How long the current outage has lasted; 0 when there is none."""
        return 0.0 if self._outage_since is None else self._clock() - self._outage_since

    @property
    def paused_for(self) -> float:
        """Seconds until requests may flow again; 0 when not paused."""
        return max(0.0, self._resume_at - self._clock())
