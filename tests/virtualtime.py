"""An asyncio event loop on virtual time: every wait ends at once, and its clock moves by it.

The pacer waits on ``asyncio.sleep`` and on aiolimiter, which schedules on the loop's clock.
Run on this loop, minutes of pacing take a fraction of a second and come out the same every
time, while every timer still fires in the order and at the (virtual) time it would have.
Only for coroutines that wait on timers: a wait for real I/O would spin.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")
_STEP = 1e-6


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


def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to its end on a fresh virtual-time loop and return its result."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
