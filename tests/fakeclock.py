"""Fake time for the tests, in the two forms the code under test can take it.

``FakeClock`` is a clock and a sleep to pass in (``as_clock()`` for a run, or a pacer's and a
retry policy's ``clock`` and ``sleep``). A sleep is recorded and returns at once, the clock
moved to its end; sleeps under way together end in order of their ends, so that many workers
waiting out one pause take that pause once, not once each. The event loop keeps real time, so
it is the one to use while real I/O is in flight (``test_run`` talks HTTP to the fake server on
loopback): bytes arrive as they would, while the waits the code decides on itself (pauses,
backoff, a spent window) cost nothing and can be read back exactly. A request in flight takes
no time on it, unless ``follow`` makes it move with a real clock too (then round trips take
what they really took).

``VirtualTimeLoop`` is an event loop whose own clock jumps over every wait, for code that waits
on the loop's timers themselves (aiolimiter schedules on the loop's clock): minutes of pacing
take a fraction of a second and come out the same every time. It must never run real I/O: a
loop that jumps over its timers while bytes are in flight fires time-outs that never happened.
"""

from __future__ import annotations

import asyncio
import itertools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bulkdelete.clock import Clock

_T = TypeVar("_T")
_STEP = 1e-6
WALL = 1_700_000_000.0  # the Unix time a FakeClock's 0 stands for


class FakeClock:
    """A clock, and a sleep that moves it at once (as soon as no sleep ends earlier)."""

    def __init__(self, start: float = 100.0, *, follow: Callable[[], float] | None = None) -> None:
        self._follow = follow
        self._origin = follow() if follow is not None else 0.0
        self._jumped = start  # what sleeps and assignments added to the followed clock
        self.sleeps: list[float] = []  # every sleep on this clock, its sleepers' included
        self.during_sleep: Callable[[], None] | None = None  # called as the next sleep ends, once
        self._sleeping: list[tuple[float, int]] = []  # (wake-up, arrival) of each sleep under way
        self._arrivals = itertools.count()

    @property
    def now(self) -> float:
        """The time now: where it started, what it jumped, and how far ``follow`` moved."""
        followed = self._follow() - self._origin if self._follow is not None else 0.0
        return self._jumped + followed

    @now.setter
    def now(self, value: float) -> None:
        self._jumped += value - self.now

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        wake = self.now + delay
        entry = (wake, next(self._arrivals))
        self._sleeping.append(entry)
        try:
            # Let every other task run, as a real sleep does even for no time at all: the other
            # sleepers say when they wake, requests in flight get their answers. Then the
            # earliest sleeper moves the clock to its wake-up: sleeps that overlap take as long
            # as the longest of them, not their sum.
            await asyncio.sleep(0)
            while self.now < wake:
                if min(self._sleeping) == entry:
                    self.now = wake
                else:
                    await asyncio.sleep(0)
        finally:
            self._sleeping.remove(entry)
        hook, self.during_sleep = self.during_sleep, None
        if hook is not None:
            hook()

    def sleeper(self) -> Sleeper:
        """Return another sleep on this clock that keeps its own record: one per waiter."""
        return Sleeper(self)

    def as_clock(self) -> Clock:
        """Return this fake time as the ``Clock`` a run takes."""
        return Clock(monotonic=self.clock, wall=self.wall, sleep=self.sleep)


class Sleeper:
    """A sleep on a ``FakeClock`` that also records its own delays, to tell waiters apart."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.sleeps: list[float] = []
        self.during_sleep: Callable[[], None] | None = None  # called as its next sleep ends, once

    async def __call__(self, delay: float) -> None:
        self.sleeps.append(float(delay))
        await self._clock.sleep(delay)
        hook, self.during_sleep = self.during_sleep, None
        if hook is not None:
            hook()


class _Selector(selectors.DefaultSelector):
    """Poll without blocking, and let the loop's clock jump over the wait it asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is not None and self.loop is not None:
            # Every turn of the loop takes a microsecond, as a real one takes some: a timer a
            # rounding error away would otherwise be rescheduled at the same instant forever.
            self.loop.advance(max(timeout, _STEP))
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` starts at 0 and advances only by the waits it makes."""

    def __init__(self) -> None:
        selector = _Selector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (the loop does this itself whenever it would wait)."""
        self._now += seconds


def run_on_virtual_time(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to its end on a fresh virtual-time loop and return its result."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
