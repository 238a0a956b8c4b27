"""``Gate``: what a ``/v3`` request passes before its endpoint answers, and how answers go out.

Every ``/v3`` request, in this order
    1. counts in the rate window, whatever its answer;
    2. has its ``apikey`` header checked: missing or empty is ``401 AUTH_ERR_EMPTY_APIKEY``; wrong,
       or sent after ``revoke_key_after`` DELETEs, is ``bad_key_status`` (404 by default, as public
       mock servers send it) ``AUTH_ERR_APIKEY_NOT_FOUND``;
    3. is refused ``429 ERR_TOO_MANY_REQUESTS`` once the window's ``limit`` is used up;
    4. reaches its endpoint, where a DELETE rolls for a fault (``faults``) around its work.

With ``limit=None`` no limit applies and no limit header is sent. ``quote_key`` writes the
``apikey`` sent into the message of ``AUTH_ERR_APIKEY_NOT_FOUND``, as public mock servers word it
("The key <apikey> ..."). Every answer sent by ``reply`` carries a ``Date`` header from the server
clock and is ``latency`` late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from aiohttp import web

from bulkdelete.fake.answers import Body, error_body
from bulkdelete.fake.config import FakeConfig
from bulkdelete.fake.faults import Fault, FaultDice, failure_answer, retry_after_text, sever
from bulkdelete.fake.stats import FakeStats
from bulkdelete.fake.window import ServerClock

__all__ = ["Applied", "Gate", "Refusal"]

Refusal: TypeAlias = tuple[int, dict[str, Any]]  # the status and error body of a refused request
Applied: TypeAlias = tuple[int, Body]  # the status and body an endpoint's work ended with


class Gate:
    """The checks every ``/v3`` request passes, the fault dice, and the way answers are sent.

    An endpoint calls ``admit`` first and sends the refusal it returns, if any; endpoints that
    change users run their work through ``with_faults``. ``clock``, ``window`` (None without a
    limit) and ``stats`` are shared with the live traffic.
    """

    def __init__(self, config: FakeConfig, stats: FakeStats) -> None:
        self.config = config
        self.stats = stats
        self.clock = ServerClock(config.clock_skew)
        self.window = config.rate_window(self.clock)
        rates = config.fault_rates
        self._dice = FaultDice(config.seed, rates) if any(rates.values()) else None
        self._fault_retry_after = retry_after_text(config.fault_retry_after)
        self._key_uses = 0

    def record(self, kind: str) -> None:
        """Count one request of ``kind`` in the stats' timeline, at the server's time."""
        window_start = self.window.started if self.window is not None else None
        self.stats.record(kind, now=self.clock.now(), window_start=window_start)

    def admit(
        self, request: web.Request, *, deleting: bool
    ) -> tuple[dict[str, str], Refusal | None]:
        """Count a /v3 request; return its headers and the refusal to send, if it is refused."""
        self.stats.requests += 1
        headers, retry_after = self.window.admit() if self.window is not None else ({}, None)
        config = self.config
        key = request.headers.get("apikey", "")
        if not key:
            return headers, (
                401,
                error_body("AUTH_ERR_EMPTY_APIKEY", "The apikey header is empty."),
            )
        revoked = config.revoke_key_after is not None and self._key_uses >= config.revoke_key_after
        if key != config.api_key or revoked:
            message = (
                f"The key {key} does not exist for this app."
                if config.quote_key
                else "The apikey sent does not exist for this app."
            )
            return headers, (
                config.bad_key_status,
                error_body("AUTH_ERR_APIKEY_NOT_FOUND", message),
            )
        if deleting:
            self._key_uses += 1
        if retry_after is not None:
            self.stats.rejected_over_limit += 1
            self.record("our_429")
            headers["Retry-After"] = str(retry_after)
            return headers, (429, error_body("ERR_TOO_MANY_REQUESTS", "Rate limit exceeded."))
        self.record("our_ok")
        return headers, None

    async def reply(self, status: int, body: Body, headers: dict[str, str]) -> web.Response:
        """Answer JSON (a dict), an HTML page (text) or raw bytes labelled as JSON."""
        self.stats.count_status(status)
        if self.config.latency:
            await asyncio.sleep(self.config.latency)
        headers["Date"] = self.clock.date()
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html", headers=headers)
        if isinstance(body, bytes):
            return web.Response(
                status=status, body=body, content_type="application/json", headers=headers
            )
        return web.json_response(body, status=status, headers=headers)

    async def with_faults(
        self,
        request: web.Request,
        headers: dict[str, str],
        work: Callable[[], Awaitable[Applied]],
        answer: Callable[[Applied], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Roll for a fault, then do ``work`` and ``answer`` what it returned, as the fault says.

        ``reset``, ``fail`` and ``throttle`` answer before ``work``; ``drop`` does the work and
        sends nothing; ``slow`` answers ``slow_seconds`` late.
        """
        fault, position = self._dice.roll() if self._dice is not None else (None, 0.0)
        if fault is not None:
            self.stats.faults[fault.value] += 1
        if fault is Fault.RESET:
            return sever(request)
        if fault is Fault.FAIL:
            return await self.reply(*failure_answer(position), headers)
        if fault is Fault.THROTTLE:
            headers["Retry-After"] = self._fault_retry_after
            if self.window is not None:
                self.window.refusal_headers(headers)
            return await self.reply(429, error_body("ERR_TOO_MANY_REQUESTS", "Slow down."), headers)
        applied = await work()
        if fault is Fault.DROP:
            return sever(request)
        if fault is Fault.SLOW:
            await asyncio.sleep(self.config.slow_seconds)
        return await answer(applied)
