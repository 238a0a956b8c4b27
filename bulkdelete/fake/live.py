"""Live traffic: the app's other clients, taking from the same rate window as the tool.

``live_rate`` requests per second stand for the other clients of the same app (its logins, user
creation): while the server runs, a background task takes them from the same rate window, accrued
on a short tick, and counts how many the window refused. With ``live_burst_seconds`` and
``live_burst_every`` the rate is ``live_burst_factor`` times higher for the last
``live_burst_seconds`` of every ``live_burst_every`` seconds of the server clock, so with a period
that divides the window a burst ends as every window ends, where a reserve is thinnest. Live
requests make no HTTP request and do not count in ``requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from bulkdelete.fake.gate import Gate

__all__ = ["LiveTraffic"]

# Live traffic accrues on this tick (seconds): steady enough, and one task whatever the rate.
_LIVE_TICK = 0.01


class LiveTraffic:
    """The simulated other clients of the app, run by ``lifetime`` while the server runs."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._config = gate.config

    def _send(self, count: int) -> None:
        """Take ``count`` live requests from the window, counting the ones it refuses."""
        gate, stats = self._gate, self._gate.stats
        for _ in range(count):
            stats.live_sent += 1
            if gate.window is None or gate.window.take():
                gate.record("live_ok")
            else:
                stats.live_refused += 1
                gate.record("live_refused")

    async def _run(self) -> None:
        """Send live requests at the configured rate until cancelled, carrying fractions over."""
        clock, config = self._gate.clock, self._config
        credit = 1.0  # the first live request goes out at once
        last = clock.now()
        while True:
            now = clock.now()
            credit += (now - last) * config.live_rate_at(now)
            last = now
            whole = int(credit)
            credit -= whole
            self._send(whole)
            await asyncio.sleep(_LIVE_TICK)

    async def lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        """Run the live traffic, if any, while the app runs (an aiohttp cleanup context)."""
        if not self._config.live_rate:
            yield
            return
        task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
