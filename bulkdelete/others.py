"""Other clients' use of the budget this run shares: how much, and how much it varies.

The budget learns it from what the remaining count lost beyond the run's own requests, and hands
it here per stretch of time. It is kept per second of the pacer's clock for the last
``HISTORY`` seconds: their mean rate is what they are expected to use, and the most their use
ran above that mean over any stretch (a burst) is what a window must keep in reserve.
"""

from __future__ import annotations

import math
from collections import deque

HISTORY = 120  # seconds kept


class OthersUse:
    """Other clients' requests per second of our clock, and how long each second was watched."""

    __slots__ = ("_reserve", "_reserve_at", "_seconds", "_used", "_watched")

    def __init__(self) -> None:
        self._seconds: deque[list[float]] = deque()  # [second, used, watched]
        self._used = self._watched = 0.0
        self._reserve = 0.0
        self._reserve_at = -1.0

    def add(self, start: float, end: float, used: float) -> None:
        """Spread ``used`` requests, and the time watched, over the seconds from start to end."""
        if end <= start:
            self._bucket(math.floor(end))[1] += used
            self._used += used
            return
        span, t = end - start, start
        while t < end:
            second = math.floor(t)
            upto = min(second + 1.0, end)
            bucket = self._bucket(second)
            share = used * (upto - t) / span
            bucket[1] += share
            bucket[2] += upto - t
            self._used += share
            self._watched += upto - t
            t = upto

    def _bucket(self, second: int) -> list[float]:
        seconds = self._seconds
        if not seconds or seconds[-1][0] < second:
            seconds.append([float(second), 0.0, 0.0])
            while seconds[0][0] <= second - HISTORY:
                _, used, watched = seconds.popleft()
                self._used -= used
                self._watched -= watched
        for bucket in reversed(seconds):
            if bucket[0] <= second:
                return bucket
        return seconds[0]  # older than what is kept: count it in the oldest second

    def rate(self) -> float:
        """Their mean rate, requests per second, over the time watched (0 before a second)."""
        return self._used / self._watched if self._watched >= 1.0 else 0.0

    def reserve(self) -> float:
        """The most their use ran above its mean over any stretch of time: a burst's size."""
        newest = self._seconds[-1][0] if self._seconds else -1.0
        if newest != self._reserve_at:  # once a second is enough
            mean, best, run = self.rate(), 0.0, 0.0
            for _, used, watched in self._seconds:
                run = max(0.0, run + used - mean * watched)
                best = max(best, run)
            self._reserve, self._reserve_at = best, newest
        return self._reserve
