"""Where a run's time comes from: a monotonic clock, the wall clock, and a sleep.

The pacer, the retry policy and the run read time only through a ``Clock``, so a test can pass
one whose sleeps return at once and move its clock by what they were asked to wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Clock:
    """The three sources of time a run uses; the defaults are the machine's."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # Unix time, to read the API's reset times against
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


SYSTEM_CLOCK: Final = Clock()
