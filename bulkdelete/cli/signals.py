"""Run the CLI's asyncio programs (a delete run, a read-back) under SIGINT/SIGTERM handling.

The first SIGINT/SIGTERM asks the program to stop gracefully (it sets the program's ``stop``
event); a second cancels it at once. Only the CLI installs signal handlers: a library caller
sets ``stop`` itself.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Ended(Generic[_T]):
    """How a program ended: its result (None when a second signal cancelled it), and the
    first signal received, if any."""

    result: _T | None
    signum: int | None


def run_program(program: Callable[[asyncio.Event], Awaitable[_T]]) -> Ended[_T]:
    """Run ``program(stop)`` in a new event loop; the first signal sets ``stop``."""
    received: list[int] = []

    async def main() -> _T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal(signum: int) -> None:
            received.append(signum)
            if stop.is_set() and task is not None:
                task.cancel()  # the second signal: stop now (the audit is still closed cleanly)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        return await program(stop)

    try:
        result: _T | None = asyncio.run(main())
    except asyncio.CancelledError:
        result = None
    return Ended(result, received[0] if received else None)
