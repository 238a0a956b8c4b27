"""The fake server's refusals: the rate window, the injected faults and the API's error bodies.

Half of ``fakeserver``, kept apart so that each half reads as one concept; like it, this module
imports nothing from the rest of bulkdelete.

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

Faults, drawn per DELETE by ``FaultDice``
    reset     the connection is reset (TCP RST) before anything is applied; no answer
    fail      500 ``ERR_MISSION_FAILED``, 503 ``ERR_SERVICE_UNAVAILABLE`` or 502 with an HTML page
              (as a load balancer sends it), evenly; nothing applied
    throttle  429 ``ERR_TOO_MANY_REQUESTS`` with ``Retry-After: fault_retry_after``, written as a
              decimal such as ``0.05`` when fractional (real servers send whole seconds), and the
              window's reset time, as every 429; nothing applied
    drop      the DELETE is applied, then the connection is reset; no answer
    slow      applied, answered ``slow_seconds`` late
    aiohttp clients resend an idempotent request once when its connection dies, so a reset or drop
    is usually followed by the same DELETE at once (after a drop it finds the user gone: 404).

Answers that prove nothing (the documents leave open what stands in front of the API)
    ``success_answer`` is the 200 a DELETE that was applied gets, by kind: ``documented`` (the
    success body), ``deactivated-uids`` (the other shape a soft delete may get), or one that
    proves nothing, as proxies and mock servers send them: ``html``, ``empty``,
    ``success-false``, ``invalid-json``, ``error-200`` (a 200 carrying ``ERR_UID_NOT_FOUND``) and
    ``huge`` (the success body padded to ``HUGE_ANSWER_BYTES``, streamed by
    ``stream_huge_answer`` in chunks, never built in memory). ``PORTAL_PAGE`` is what a captive
    portal answers to every request.
"""

from __future__ import annotations

import email.utils
import enum
import math
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = [
    "HEADER_NAMES",
    "HUGE_ANSWER_BYTES",
    "PORTAL_PAGE",
    "SUCCESS_BODIES",
    "Fault",
    "FaultDice",
    "RateWindow",
    "ServerClock",
    "error_body",
    "failure_answer",
    "retry_after_text",
    "sever",
    "stream_huge_answer",
    "success_answer",
]

# Per header style: the (limit, remaining, reset) header names to send.
HEADER_NAMES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "old": (("X-Rate-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"),),
    "new": (("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"),),
}
HEADER_NAMES["both"] = HEADER_NAMES["old"] + HEADER_NAMES["new"]

_RST_ON_CLOSE = struct.pack("ii", 1, 0)


def error_body(code: str, message: str) -> dict[str, Any]:
    """Return the API's error body for ``code``."""
    return {
        "error": {
            "code": code,
            "message": message,
            "devMessage": message,
            "source": "fake-cometchat",
            "details": {},
        }
    }


# 502 comes from the load balancer in front of the API, so its body is HTML, not the API's JSON.
_FAILURES: tuple[tuple[int, dict[str, Any] | str], ...] = (
    (500, error_body("ERR_MISSION_FAILED", "The request could not be completed. Please retry.")),
    (502, "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"),
    (503, error_body("ERR_SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")),
)


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


class Fault(enum.Enum):
    """A fault the fake can inject into one DELETE, in the order the dice are read."""

    RESET = "reset"
    FAIL = "fail"
    THROTTLE = "throttle"
    DROP = "drop"
    SLOW = "slow"


class FaultDice:
    """Decide each DELETE's fault from ``random.Random(seed)``.

    Every roll draws one number per fault kind, whatever the outcome, so request *n* sees the same
    numbers whatever the rates are: raising one rate never reshuffles another fault's pattern. The
    first kind (in ``Fault`` order) whose number falls under its rate wins. The same seed and the
    same order of requests give the same faults; concurrent clients make that order vary.
    """

    __slots__ = ("_rates", "_rng")

    def __init__(self, seed: int, rates: dict[Fault, float]) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not security
        self._rates = tuple((fault, rates.get(fault, 0.0)) for fault in Fault)

    def roll(self) -> tuple[Fault | None, float]:
        """Return the next DELETE's fault (None for none) and where in ``[0, 1)`` its number fell.

        That position lets a fault pick among its own variants without another draw.
        """
        draw = self._rng.random
        numbers = [draw() for _ in self._rates]
        for (fault, rate), number in zip(self._rates, numbers, strict=True):
            if number < rate:
                return fault, number / rate
        return None, 0.0


def failure_answer(position: float) -> tuple[int, dict[str, Any] | str]:
    """Return the status and body (JSON, or HTML text for 502) of a failure, chosen by position."""
    return _FAILURES[min(int(position * len(_FAILURES)), len(_FAILURES) - 1)]


def retry_after_text(seconds: float) -> str:
    """Format delta-seconds for ``Retry-After``: ``"1"`` when whole, ``"0.05"`` when not."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def sever(request: web.BaseRequest) -> web.StreamResponse:
    """Reset the request's connection (TCP RST) so that the client gets no answer at all.

    Return a response for the handler to hand back: aiohttp finds the transport gone when it tries
    to write it and drops it quietly, as it does for any client that went away.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into an abortive RST, like a crashed proxy, not a polite FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
        transport.abort()
    return web.Response(status=500)


SUCCESS_BODIES = (
    "documented",
    "deactivated-uids",
    "html",
    "empty",
    "success-false",
    "invalid-json",
    "error-200",
    "huge",
)
HUGE_ANSWER_BYTES = 200_000_000
_HUGE_CHUNK = b"x" * 65536
PORTAL_PAGE = (
    "<!doctype html><html><head><title>Sign in</title></head>"
    "<body><form action=/login method=post>Sign in to use this network</form></body></html>"
)


def success_answer(kind: str, uid: str, *, permanent: bool) -> dict[str, Any] | str | bytes:
    """Return the 200 body for an applied DELETE: JSON, HTML text, or raw bytes sent as JSON.

    ``huge`` is not built here: see ``stream_huge_answer``.
    """
    documented = {
        "data": {"success": True, "message": f"User with {uid} has been deleted successfully."}
    }
    bodies: dict[str, dict[str, Any] | str | bytes] = {
        "documented": documented,
        # CometChat's own API tests see this shape for a soft delete only.
        "deactivated-uids": documented if permanent else {"data": {"deactivatedUids": [uid]}},
        "html": "<html><body><h1>OK</h1></body></html>",
        "empty": b"",
        "success-false": {"data": {"success": False, "message": "Failed to delete the user."}},
        "invalid-json": b'{"data": {"success": tr',
        "error-200": error_body("ERR_UID_NOT_FOUND", f"The UID {uid} does not exist."),
    }
    return bodies[kind]


async def stream_huge_answer(
    request: web.BaseRequest, headers: dict[str, str], *, size: int = HUGE_ANSWER_BYTES
) -> web.StreamResponse:
    """Stream a success body of about ``size`` bytes without a length, as chunks.

    A client that stops reading and hangs up ends the stream early, quietly.
    """
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    await response.prepare(request)
    head, tail = b'{"data": {"success": true, "message": "', b'"}}'
    try:
        await response.write(head)
        for _ in range((size - len(head) - len(tail)) // len(_HUGE_CHUNK)):
            await response.write(_HUGE_CHUNK)
        await response.write(tail)
        await response.write_eof()
    except ConnectionError:
        pass  # the client hung up: the rest is not wanted
    return response
