"""Run bulkdelete's fake CometChat in a process of its own, for the benchmarks.

    python bench/_fakerun.py '{"limit": 3000, "window": 60, "all_exist": true, "live_rate": 15}'

The JSON object holds ``FakeConfig`` fields by name (``users`` as a list). The base URL is the
first line on stdout; the server runs until SIGTERM or SIGINT. ``bench/pacing.py`` uses this only
for settings that ``bulkdelete fake-server`` has no option for yet (``live_rate``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from bulkdelete.fakeserver import FakeConfig, FakeServer


async def serve(settings: dict[str, Any]) -> None:
    """Serve the fake with ``settings`` until a stop signal."""
    if "users" in settings:
        settings["users"] = frozenset(settings["users"])
    config = FakeConfig(**settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with FakeServer(config) as server:
        print(server.base_url, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
