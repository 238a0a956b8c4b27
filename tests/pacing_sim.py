"""A run of the real pacer against the fake server's real rate window, on virtual time.

No HTTP: each request is admitted by ``fake.RateWindow`` (the same window the fake server
answers from), its headers go through ``api.rate_info`` and ``retry.call_with_retries`` as a real
answer's would, and live traffic takes from the same window at ``FakeConfig.live_rate_at``. On a
``fakeclock.VirtualTimeLoop`` a few minutes of windows take a second, and every run is the same.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from multidict import CIMultiDict

from bulkdelete.api import rate_info
from bulkdelete.fake import FakeConfig, ServerClock
from bulkdelete.outcome import Answer, Body, BodyKind
from bulkdelete.pacing import Pacer
from bulkdelete.retry import RetryPolicy, call_with_retries

EPOCH = 1_700_000_040.0  # the loop's 0 on the machine's wall clock: 0 s into a minute
_LIVE_TICK = 0.01
_WORKERS = 64

Headers = Callable[[dict[str, str]], dict[str, str]]
_KEYS = ("our_ok", "our_429", "live_ok", "live_refused")


@dataclass
class Tally:
    """Requests per whole second of the server clock since the first window opened."""

    seconds: dict[int, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(_KEYS, 0))
    )

    def count(self, second: int, key: str) -> None:
        self.seconds[second][key] += 1

    def total(self, key: str, start: int = 0, end: int = 1 << 30) -> int:
        return sum(row[key] for second, row in self.seconds.items() if start <= second < end)


class Server:
    """CometChat's rate window as the fake serves it, on the loop's clock."""

    def __init__(
        self,
        config: FakeConfig,
        *,
        latency: float = 0.01,
        headers: Headers = lambda sent: sent,
    ) -> None:
        self.config = config
        self.latency = latency
        self._headers = headers  # a chance to change what the window sends, for hostile headers
        loop = asyncio.get_running_loop()
        self.clock = ServerClock(config.clock_skew, source=lambda: EPOCH + loop.time())
        window = config.rate_window(self.clock)
        assert window is not None, "the simulation needs a limit"
        self.window = window
        self.tally = Tally()
        self.live_sent = 0

    def second(self) -> int:
        """Return the current second of the timeline (0 is the first window's first second)."""
        now = self.clock.now()
        start = self.window.started
        return math.floor(now - (start if start is not None else now))

    async def delete(self) -> Answer:
        """Answer one DELETE as the fake does, ``latency`` after it was admitted."""
        headers, retry_after = self.window.admit()
        self.tally.count(self.second(), "our_ok" if retry_after is None else "our_429")
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        headers["Date"] = self.clock.date()
        headers = self._headers(headers)
        await asyncio.sleep(self.latency)
        rate = rate_info(CIMultiDict(headers), now=self.clock.now())
        if retry_after is None:  # the documented confirmation: a 2xx alone proves nothing
            return Answer(200, rate=rate, body=Body(BodyKind.OBJECT, success=True))
        return Answer(
            429, "ERR_TOO_MANY_REQUESTS", rate=rate, body=Body(BodyKind.OBJECT, error=True)
        )

    async def live(self) -> None:
        """Take the live traffic from the window until cancelled."""
        credit, last = 1.0, self.clock.now()
        while True:
            now = self.clock.now()
            credit += (now - last) * self.config.live_rate_at(now)
            last = now
            while credit >= 1:
                credit -= 1
                self.live_sent += 1
                admitted = self.window.take()
                self.tally.count(self.second(), "live_ok" if admitted else "live_refused")
            await asyncio.sleep(_LIVE_TICK)

    def used(self, window: int) -> int:
        """Return what window ``window`` (0 is the first) admitted, ours and live."""
        length = int(self.config.window)
        span = (window * length, (window + 1) * length)
        return self.tally.total("our_ok", *span) + self.tally.total("live_ok", *span)

    def window_size(self) -> int:
        """Return the limit of one window."""
        assert self.config.limit is not None
        return self.config.limit

    def ours(self, window: int) -> int:
        """Return our requests window ``window`` admitted."""
        length = int(self.config.window)
        return self.tally.total("our_ok", window * length, (window + 1) * length)


def new_pacer(**options: object) -> Pacer:
    """Return a pacer with the CLI's defaults on the running (virtual-time) loop's clocks."""
    loop = asyncio.get_running_loop()
    settings: dict[str, object] = {
        "ceiling": 10_000 / 60,
        "clock": loop.time,
        "wall_clock": lambda: EPOCH + loop.time(),
        "sleep": asyncio.sleep,
    } | options
    return Pacer(**settings)  # type: ignore[arg-type]  # the defaults above, overridden by name


async def send(
    server: Server,
    pacer: Pacer,
    uids: Iterable[int],
    *,
    seconds: float,
    policy: RetryPolicy | None = None,
) -> list[Answer | None]:
    """Delete ``uids`` through ``pacer`` for at most ``seconds``; return each UID's last answer.

    Like the CLI's run, one request (the credential check) goes before the others; the run stops
    as the CLI's does on a signal: nothing new is sent, requests in flight finish.
    """
    loop = asyncio.get_running_loop()
    policy = policy or RetryPolicy(sleep=asyncio.sleep, clock=loop.time)
    pending = iter(uids)
    answers: list[Answer | None] = []
    await call_with_retries(server.delete, policy=policy, pacer=pacer)

    async def worker() -> None:
        for _ in pending:
            attempted = await call_with_retries(server.delete, policy=policy, pacer=pacer)
            answers.append(None if attempted is None else attempted.answer)

    workers = [asyncio.create_task(worker()) for _ in range(_WORKERS)]
    done, _ = await asyncio.wait(workers, timeout=seconds)
    if len(done) < len(workers):
        pacer.halt()
        await asyncio.gather(*workers)
    return answers
