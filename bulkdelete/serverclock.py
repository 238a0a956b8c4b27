"""The server's clock as the answers show it: when each answer was, and its offset from ours.

A ``Sighting`` is one answer's rate-limit headers placed on the pacer's monotonic clock: when
its request left and when the answer came. ``Offset`` bounds the server clock minus the
pacer's from the ``Date`` headers (whole seconds, each made between sending and answering), so
that ``budget.Budget`` can read reset times and try the server clock's minute as the window's
boundary. Without a ``Date`` the server clock is taken as our wall clock, within a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_NO_DATE_SKEW = 1.0  # without a Date header the server clock is taken as ours, within this


@dataclass(frozen=True, slots=True)
class Sighting:
    """One answer's rate-limit headers, placed on the pacer's clock."""

    limit: int
    remaining: int
    ticket: int  # the pacer's number for the request: ours are numbered in the order sent
    sent: float
    received: float
    in_flight_before: int  # our requests in flight when it was sent: any may be admitted after it
    reset_at: float | None = None  # Unix time, server clock
    server_date: float | None = None  # the Date header, Unix seconds
    wall_offset: float = 0.0  # our wall clock minus the pacer's clock, for answers without Date


class Offset:
    """Bounds on the server clock minus the pacer's clock."""

    __slots__ = ("dated", "hi", "lo")

    def __init__(self) -> None:
        self.lo, self.hi, self.dated = -math.inf, math.inf, False

    def learn(self, seen: Sighting) -> None:
        """Narrow the bounds by one answer's ``Date`` (or, without one, by our wall clock)."""
        if seen.server_date is None:
            if not self.dated:
                self.lo = seen.wall_offset - _NO_DATE_SKEW
                self.hi = seen.wall_offset + _NO_DATE_SKEW
            return
        # The Date was made between sending and answering, and names the whole second it was in.
        lo, hi = seen.server_date - seen.received, seen.server_date + 1 - seen.sent
        if self.dated:
            lo, hi = max(self.lo, lo), min(self.hi, hi)
            if lo > hi:  # the server's clock was set: start over from this answer
                lo, hi = seen.server_date - seen.received, seen.server_date + 1 - seen.sent
        self.lo, self.hi, self.dated = lo, hi, True
