"""The fake's clock and its rate window.

Server clock
    ``ServerClock`` is the machine's wall clock plus ``clock_skew`` seconds: the fake's windows,
    reset times, live-traffic bursts and ``Date`` header all read it, so a skewed fake is a server
    whose clock disagrees with the client's.

Rate window, by default as CometChat documents it
    Fixed windows of ``window`` seconds aligned to the server clock: window k covers
    ``[k*window, (k+1)*window)`` of Unix time, so 60 s windows are the clock's minutes. Every
    counted answer carries the limit and the requests left in the current window, named as the
    header style says: ``X-Rate-Limit`` and ``X-Rate-Limit-Remaining`` (old) and/or
    ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` (new). Over the limit the answer is
    ``429 ERR_TOO_MANY_REQUESTS`` with ``Retry-After`` (whole seconds to the window's end, at
    least 1) and the window's end as a Unix time rounded up to the second
    (``X-Rate-Limit-Reset`` / ``X-RateLimit-Reset``). Only a 429 carries those two. Simulated live
    traffic (other clients of the same app) takes from the same windows through
    ``RateWindow.take``.

    What the documents leave open is a flag: ``from_first_request`` counts windows from the first
    request instead of the clock's epoch (``[t0 + k*window, t0 + (k+1)*window)``, an idle spell
    skipping windows, not shifting them); ``reset_on_every_answer`` sends the reset time on every
    answer, not only on a 429.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable

__all__ = ["HEADER_NAMES", "RateWindow", "ServerClock"]

# Per header style: the (limit, remaining, reset) header names to send.
HEADER_NAMES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "old": (("X-Rate-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"),),
    "new": (("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"),),
}
HEADER_NAMES["both"] = HEADER_NAMES["old"] + HEADER_NAMES["new"]


class ServerClock:
    """The fake's own clock: the machine's wall clock, ``skew`` seconds ahead (behind if negative).

    Windows, reset times, bursts of live traffic and the ``Date`` header all read this clock, so a
    skewed fake looks like a server whose clock disagrees with the client's. ``source`` stands in
    for the wall clock in simulations on virtual time.
    """

    __slots__ = ("_date", "_date_second", "_skew", "_source")

    def __init__(self, skew: float = 0.0, *, source: Callable[[], float] = time.time) -> None:
        self._skew = skew
        self._source = source
        self._date_second: int | None = None
        self._date = ""

    def now(self) -> float:
        """Return the server's time as Unix seconds."""
        return self._source() + self._skew

    def date(self) -> str:
        """Return the ``Date`` header for now: whole seconds, as every HTTP server sends it."""
        second = math.floor(self.now())
        if second != self._date_second:
            self._date_second = second
            self._date = email.utils.formatdate(second, usegmt=True)
        return self._date


class RateWindow:
    """Count requests in fixed windows; see the module docstring for alignment and headers."""

    __slots__ = (
        "_clock",
        "_end",
        "_length",
        "_limit",
        "_limit_text",
        "_names",
        "_origin",
        "_reset_always",
        "_start",
        "_used",
    )

    def __init__(
        self,
        limit: int,
        length: float,
        names: tuple[tuple[str, str, str], ...],
        *,
        clock: ServerClock,
        from_first_request: bool = False,
        reset_on_every_answer: bool = False,
    ) -> None:
        self._limit = limit
        self._limit_text = str(limit)
        self._length = length
        self._names = names
        self._clock = clock
        # Windows are counted from here: the clock's epoch (whole minutes of the server's clock
        # for 60 s windows), or the first request when that is set.
        self._origin: float | None = None if from_first_request else 0.0
        self._reset_always = reset_on_every_answer
        self._start: float | None = None
        self._end = -math.inf
        self._used = 0

    @property
    def started(self) -> float | None:
        """Return the server time at which the first window in use opened, None before that."""
        return self._start

    def _count(self, now: float) -> None:
        """Count one request at ``now``, opening a new window first when the current one is over."""
        if now >= self._end:
            if self._origin is None:
                self._origin = now
            index = (now - self._origin) // self._length
            start = self._origin + index * self._length
            self._end = start + self._length
            if self._end <= now:  # float rounding can land the boundary on `now` itself
                start, self._end = self._end, self._end + self._length
            if self._start is None:
                self._start = start
            self._used = 0
        self._used += 1

    def take(self) -> bool:
        """Count a request that needs no answer (simulated live traffic); return if it fit."""
        self._count(self._clock.now())
        return self._used <= self._limit

    def admit(self) -> tuple[dict[str, str], int | None]:
        """Count a request; return its rate-limit headers and, if it is over the limit, Retry-After.

        Refused, the headers include the reset time; callers that refuse a request for another
        reason add it with ``refusal_headers``.
        """
        now = self._clock.now()
        self._count(now)
        remaining = str(max(0, self._limit - self._used))
        headers: dict[str, str] = {}
        for limit_name, remaining_name, _ in self._names:
            headers[limit_name] = self._limit_text
            headers[remaining_name] = remaining
        over = self._used > self._limit
        if over or self._reset_always:
            self.refusal_headers(headers)
        if not over:
            return headers, None
        return headers, max(1, math.ceil(self._end - now))

    def refusal_headers(self, headers: dict[str, str]) -> None:
        """Add the current window's reset time (Unix seconds, rounded up) to a 429's headers."""
        reset = str(math.ceil(self._end))
        for _, _, reset_name in self._names:
            headers[reset_name] = reset
