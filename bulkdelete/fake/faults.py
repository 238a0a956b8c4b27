"""The faults the fake injects into DELETEs, and the answers they give.

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
"""

from __future__ import annotations

import enum
import random
import socket
import struct
from typing import Any

from aiohttp import web

from bulkdelete.fake.answers import error_body

__all__ = ["Fault", "FaultDice", "failure_answer", "retry_after_text", "sever"]

_RST_ON_CLOSE = struct.pack("ii", 1, 0)

# 502 comes from the load balancer in front of the API, so its body is HTML, not the API's JSON.
_FAILURES: tuple[tuple[int, dict[str, Any] | str], ...] = (
    (500, error_body("ERR_MISSION_FAILED", "The request could not be completed. Please retry.")),
    (502, "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"),
    (503, error_body("ERR_SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")),
)


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
