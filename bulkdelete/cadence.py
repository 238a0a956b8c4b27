"""The rate requests leave at, on aiolimiter: a new limiter for a new rate, and no bursts.

aiolimiter cannot change its rate, so a new limiter replaces the old one when the rate moves
by more than ``RERATE_TOLERANCE``. Its bucket holds ``BURST_SECONDS`` of requests and is filled
before first use, counted from the latest request let go, so neither a run nor a new rate
starts with a burst, and a new rate costs no time itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aiolimiter import AsyncLimiter

BURST_SECONDS = 0.05
RERATE_TOLERANCE = 0.005  # a rate change smaller than this keeps the current limiter


class Cadence:
    """Requests per second, and the wait for each request's turn at that rate."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self.granted_at = -math.inf  # when the latest request was let go
        self._limiter = _limiter(rate)
        self._primed: AsyncLimiter | None = None  # the limiter whose bucket was filled

    def set(self, rate: float) -> None:
        """Move to ``rate`` unless it is within the tolerance of the current one."""
        if abs(rate - self.rate) > RERATE_TOLERANCE * self.rate:
            self.rate = rate
            self._limiter = _limiter(rate)

    async def take(self) -> None:
        """Wait for the rate; once more if it changed meanwhile, so a cut applies to the queue."""
        for _ in range(2):
            limiter = self._limiter
            if limiter is not self._primed:
                # aiolimiter's bucket starts empty and would let a burst through. Filling it
                # (granted at once, it is empty) makes every request wait its turn at the new
                # rate, counted from the latest one let go.
                self._primed = limiter
                since = (self._clock() - self.granted_at) * self.rate
                await limiter.acquire(limiter.max_rate - min(1.0, since))
            await limiter.acquire()
            if limiter is self._limiter:
                return


def _limiter(rate: float) -> AsyncLimiter:
    burst = max(1.0, rate * BURST_SECONDS)
    return AsyncLimiter(burst, burst / rate)
