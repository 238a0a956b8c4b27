"""Run-wide pacing: a ceiling on the request rate and a pause every request obeys.

One ``Pacer`` serves the whole run. Every attempt (retries included) waits for ``turn()``
before it is sent, so a 429's ``Retry-After`` stops every worker, not just the one that saw it.

aiolimiter's bucket starts empty and lets ``max_rate`` requests through at once, so the bucket is
sized to 50 ms worth of requests: a small burst keeps timer overhead low at high rates without
letting a run start with a flood.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter

_BURST_SECONDS = 0.05
HALT_CHECK = 0.25  # longest a waiting request takes to notice a halt, in seconds


class Pacer:
    """A rate ceiling (requests per second) plus a run-wide pause."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        burst = max(1.0, rate * _BURST_SECONDS)
        self._limiter = AsyncLimiter(burst, burst / rate)
        self._clock = clock
        self._sleep = sleep
        self._resume_at = 0.0
        self._halted = False
        self.pauses = 0

    async def turn(self) -> bool:
        """Wait until the run is not paused and the rate allows one more request.

        Return False, without waiting any longer, once ``halt`` was called: send nothing then.
        """
        while not self._halted and (delay := self._resume_at - self._clock()) > 0:
            # Sleep in short steps so a halt during a long Retry-After pause is seen quickly.
            await self._sleep(min(delay, HALT_CHECK))
        if self._halted:
            return False
        await self._limiter.acquire()
        return not self._halted

    def halt(self) -> None:
        """Make every ``turn`` return False from now on: the run is stopping."""
        self._halted = True

    @property
    def halted(self) -> bool:
        """True once ``halt`` was called."""
        return self._halted

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (a later pause only ever extends it)."""
        resume_at = self._clock() + seconds
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses += 1

    @property
    def paused_for(self) -> float:
        """Seconds until requests may flow again; 0 when not paused."""
        return max(0.0, self._resume_at - self._clock())
