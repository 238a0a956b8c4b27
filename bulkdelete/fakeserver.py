"""A stand-in for CometChat's v3 user API, written from the API documentation alone.

It imports nothing from the rest of bulkdelete (``fakefaults`` is its other half), so the tool
cannot pass its tests by sharing a mistake with it. Integration tests run it as ``bulkdelete
fake-server``, ``bulkdelete demo`` runs it in-process, benchmarks push load at it.

Users
    A UID is *active* when ``users`` lists it (or ``all_exist`` is set) and it has not been deleted;
    UIDs are matched lowercased. ``DELETE /v3/users/{uid}`` with ``{"permanent": false}``, no body
    or no such key makes an active user *deactivated*; ``{"permanent": true}`` makes it *removed*.
    A ``permanent`` that is not a JSON boolean is ``400 ERR_BAD_REQUEST``. A DELETE or GET of a
    user that is not active is ``404 ERR_UID_NOT_FOUND``: CometChat answers so for deactivated users
    too. ``GET /v3/users?perPage=N`` lists up to N active users of ``users``, smallest UIDs first.

Every ``/v3`` request, in this order
    1. counts in the rate window, whatever its answer;
    2. has its ``apikey`` header checked: missing or empty is ``401 AUTH_ERR_EMPTY_APIKEY``; wrong,
       or sent after ``revoke_key_after`` DELETEs, is ``bad_key_status`` (404 by default, as public
       mock servers send it) ``AUTH_ERR_APIKEY_NOT_FOUND``;
    3. is refused ``429 ERR_TOO_MANY_REQUESTS`` once the window's ``limit`` is used up;
    4. reaches its endpoint, where a DELETE rolls for a fault.

Rate window and faults
    ``fakefaults`` describes both. With ``limit=None`` no limit applies and no limit header is
    sent. Faults hit only DELETEs that passed steps 1 to 3.

Live traffic
    ``live_rate`` requests per second stand for the other clients of the same app (its logins,
    user creation): while the server runs, a background task takes them from the same rate window,
    accrued on a short tick, and counts how many the window refused. With ``live_burst_seconds``
    and ``live_burst_every`` the rate is ``live_burst_factor`` times higher for the last
    ``live_burst_seconds`` of every ``live_burst_every`` seconds of the server clock, so with a
    period that divides the window a burst ends as every window ends, where a reserve is thinnest.
    Live requests make no HTTP request and do not count in ``requests``.

Timeline
    ``timeline`` counts, per whole second of the server clock since the start of the first rate
    window in use (or since the first counted request without a limit), our requests that passed
    the gate (``our_ok``, whatever the endpoint answered), ours refused by the window (``our_429``)
    and the live ones admitted or refused. With a whole-second ``window`` every window is a run of
    whole seconds of the timeline. Only the last ``_TIMELINE_SECONDS`` seconds with traffic are
    kept.

In front of the API (each a flag, off by default)
    ``success_body`` picks the 200 an applied DELETE gets (``fakefaults.success_answer``).
    ``portal`` answers every request but the stats 200 with an HTML page, as a captive portal
    does; ``redirect_to`` answers each ``307`` to that URL followed by the request's path and
    query, as a redirecting proxy does. Neither reaches the API: nothing is counted in the
    window or applied. ``quote_key`` writes the ``apikey`` sent into the message of
    ``AUTH_ERR_APIKEY_NOT_FOUND``, as public mock servers word it ("The key <apikey> ...").

Every answer carries a ``Date`` header from the server clock. ``latency`` delays every answer but
the stats. ``GET /_fake/stats`` (no key, not counted) returns ``FakeStats.as_json()``. Any other
path or method is a 404 counted in ``unmatched_paths``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import heapq
import io
import itertools
import json
import math
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from bulkdelete.fakefaults import (
    HEADER_NAMES,
    PORTAL_PAGE,
    SUCCESS_BODIES,
    Fault,
    FaultDice,
    RateWindow,
    ServerClock,
    error_body,
    failure_answer,
    retry_after_text,
    sever,
    stream_huge_answer,
    success_answer,
)

__all__ = ["STATS", "FakeConfig", "FakeServer", "FakeStats", "build_app", "load_users", "serve"]

_MAX_PER_PAGE = 1000
# Live traffic accrues on this tick (seconds): steady enough, and one task whatever the rate.
_LIVE_TICK = 0.01
_TIMELINE_SECONDS = 3600
_TIMELINE_KEYS = ("our_ok", "our_429", "live_ok", "live_refused")
# Handlers still running at stop (a slow fault) get this long before they are cancelled.
_SHUTDOWN_GRACE = 0.25


@dataclass(frozen=True, slots=True)
class FakeConfig:
    """What the fake knows and how it misbehaves; field names match ``bulkdelete fake-server``.

    Fault rates are fractions of DELETEs in ``[0, 1]``; ``live_rate`` is requests per second;
    times are seconds. ``users`` is lowercased here.
    Raise ``ValueError`` on a value the server cannot honour.
    """

    api_key: str = "fake-api-key"
    users: frozenset[str] | None = None
    all_exist: bool = False
    limit: int | None = None
    window: float = 60.0
    window_from_first_request: bool = False
    reset_on_every_answer: bool = False
    header_style: Literal["old", "new", "both"] = "both"
    clock_skew: float = 0.0
    bad_key_status: int = 404
    seed: int = 0
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    drop_rate: float = 0.0
    latency: float = 0.0
    revoke_key_after: int | None = None
    fault_retry_after: float = 1.0
    live_rate: float = 0.0
    success_body: str = "documented"
    portal: bool = False
    redirect_to: str | None = None
    quote_key: bool = False
    live_burst_factor: float = 1.0
    live_burst_seconds: float = 0.0
    live_burst_every: float = 0.0

    def __post_init__(self) -> None:
        problems = [
            f"{fault.value}_rate must be within [0, 1], got {rate}"
            for fault, rate in self.fault_rates.items()
            if not 0.0 <= rate <= 1.0
        ]
        problems += [
            f"{name} must not be negative, got {value}"
            for name, value in (
                ("slow_seconds", self.slow_seconds),
                ("latency", self.latency),
                ("fault_retry_after", self.fault_retry_after),
                ("revoke_key_after", self.revoke_key_after or 0),
                ("live_rate", self.live_rate),
                ("live_burst_factor", self.live_burst_factor),
                ("live_burst_seconds", self.live_burst_seconds),
                ("live_burst_every", self.live_burst_every),
            )
            if value < 0
        ]
        if self.live_burst_seconds > self.live_burst_every:
            problems.append(
                f"live_burst_seconds ({self.live_burst_seconds}) must not exceed "
                f"live_burst_every ({self.live_burst_every})"
            )
        if not math.isfinite(self.clock_skew):
            problems.append(f"clock_skew must be a finite number, got {self.clock_skew}")
        if not self.api_key:
            problems.append("api_key must not be empty")
        if self.window <= 0:
            problems.append(f"window must be positive, got {self.window}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit must be at least 1, got {self.limit}")
        if self.header_style not in HEADER_NAMES:
            problems.append(f"header_style must be old, new or both, got {self.header_style!r}")
        if not 400 <= self.bad_key_status <= 599:  # noqa: PLR2004 - the HTTP error range
            problems.append(
                f"bad_key_status must be an HTTP error status, got {self.bad_key_status}"
            )
        if self.success_body not in SUCCESS_BODIES:
            problems.append(
                f"success_body must be one of {', '.join(SUCCESS_BODIES)}, "
                f"got {self.success_body!r}"
            )
        if self.redirect_to is not None and not self.redirect_to.startswith(
            ("http://", "https://")
        ):
            problems.append(f"redirect_to must be an http(s) URL, got {self.redirect_to!r}")
        if self.portal and self.redirect_to is not None:
            problems.append("portal and redirect_to cannot both answer every request")
        if problems:
            raise ValueError("; ".join(problems))
        if self.users is not None:
            object.__setattr__(self, "users", frozenset(uid.lower() for uid in self.users))

    def live_rate_at(self, now: float) -> float:
        """Return the live traffic's rate at server time ``now``, bursts included."""
        every, burst = self.live_burst_every, self.live_burst_seconds
        if burst and now % every >= every - burst:
            return self.live_rate * self.live_burst_factor
        return self.live_rate

    @property
    def fault_rates(self) -> dict[Fault, float]:
        """Return each fault kind's rate."""
        return {
            Fault.RESET: self.reset_rate,
            Fault.FAIL: self.fail_rate,
            Fault.THROTTLE: self.throttle_rate,
            Fault.DROP: self.drop_rate,
            Fault.SLOW: self.slow_rate,
        }


@dataclass(slots=True)
class FakeStats:
    """Live counters of what the fake saw; ``as_json()`` is what ``GET /_fake/stats`` returns.

    ``requests`` counts every request but the stats' own. ``deletes_by_uid`` counts DELETEs that
    reached the handler, whatever their answer; ``permanent_flags`` lists the valid ``permanent``
    values received; ``applied`` is each deleted user's state. ``status_counts`` counts answers
    actually sent (a reset or drop sends none); ``faults`` counts injected faults by kind and
    ``rejected_over_limit`` the 429s of the real window. ``live_sent`` counts the simulated live
    requests, ``live_refused`` those the window refused; ``timeline`` is described in the module
    docstring (its seconds become string keys in JSON), and ``timeline_start`` is the server
    clock's Unix time of its second 0.
    """

    requests: int = 0
    deletes_by_uid: dict[str, int] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)
    permanent_flags: dict[str, list[bool]] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((f.value for f in Fault), 0)
    )
    rejected_over_limit: int = 0
    unmatched_paths: int = 0
    bad_requests: int = 0
    live_sent: int = 0
    live_refused: int = 0
    timeline_start: float | None = None
    timeline: dict[int, dict[str, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return the counters as JSON-ready values; status codes become string keys."""
        counters = {counter.name: getattr(self, counter.name) for counter in fields(self)}
        counters["status_counts"] = {str(code): n for code, n in sorted(self.status_counts.items())}
        counters["timeline"] = {str(second): dict(row) for second, row in self.timeline.items()}
        return counters


STATS = web.AppKey("fake_stats", FakeStats)


def _uid_not_found(uid: str) -> dict[str, Any]:
    return error_body("ERR_UID_NOT_FOUND", f"The UID {uid} does not exist.")


def _permanent(raw: bytes) -> bool | None:
    """Return the body's ``permanent`` flag, False when absent, None when the body is invalid."""
    if not raw.strip():
        return False
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    permanent = body.get("permanent", False)
    return permanent if isinstance(permanent, bool) else None


def _per_page(text: str) -> int | None:
    if not text.isdigit():
        return None
    per_page = int(text)
    return per_page if 1 <= per_page <= _MAX_PER_PAGE else None


class _Fake:
    """The server's state and request handlers."""

    def __init__(self, config: FakeConfig, stats: FakeStats) -> None:
        self._config = config
        self._stats = stats
        self._users = config.users or frozenset()
        self._clock = ServerClock(config.clock_skew)
        self._window = (
            RateWindow(
                config.limit,
                config.window,
                HEADER_NAMES[config.header_style],
                clock=self._clock,
                from_first_request=config.window_from_first_request,
                reset_on_every_answer=config.reset_on_every_answer,
            )
            if config.limit is not None
            else None
        )
        rates = config.fault_rates
        self._dice = FaultDice(config.seed, rates) if any(rates.values()) else None
        self._fault_retry_after = retry_after_text(config.fault_retry_after)
        self._key_uses = 0
        self._created_at = int(self._clock.now())

    def _record(self, kind: str) -> None:
        """Count one request of ``kind`` (one of ``_TIMELINE_KEYS``) in the current second."""
        now = self._clock.now()
        start = self._stats.timeline_start
        if start is None:
            started = self._window.started if self._window is not None else None
            start = self._stats.timeline_start = now if started is None else started
        second = int(now - start)
        timeline = self._stats.timeline
        row = timeline.get(second)
        if row is None:
            row = timeline[second] = dict.fromkeys(_TIMELINE_KEYS, 0)
            if len(timeline) > _TIMELINE_SECONDS:
                del timeline[next(iter(timeline))]  # seconds are inserted in order
        row[kind] += 1

    def _send_live(self, count: int) -> None:
        """Take ``count`` live requests from the window, counting the ones it refuses."""
        stats = self._stats
        for _ in range(count):
            stats.live_sent += 1
            if self._window is None or self._window.take():
                self._record("live_ok")
            else:
                stats.live_refused += 1
                self._record("live_refused")

    async def _live_traffic(self) -> None:
        """Send live requests at the configured rate until cancelled, carrying fractions over."""
        config = self._config
        credit = 1.0  # the first live request goes out at once
        last = self._clock.now()
        while True:
            now = self._clock.now()
            credit += (now - last) * config.live_rate_at(now)
            last = now
            whole = int(credit)
            credit -= whole
            self._send_live(whole)
            await asyncio.sleep(_LIVE_TICK)

    async def lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        """Run the live traffic, if any, while the app runs (an aiohttp cleanup context)."""
        if not self._config.live_rate:
            yield
            return
        task = asyncio.create_task(self._live_traffic())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _is_active(self, uid: str) -> bool:
        return uid not in self._stats.applied and (self._config.all_exist or uid in self._users)

    def _gate(
        self, request: web.Request, *, deleting: bool
    ) -> tuple[dict[str, str], tuple[int, dict[str, Any]] | None]:
        """Count a /v3 request; return its headers and the refusal to send, if it is refused."""
        self._stats.requests += 1
        headers, retry_after = self._window.admit() if self._window is not None else ({}, None)
        config = self._config
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
            self._stats.rejected_over_limit += 1
            self._record("our_429")
            headers["Retry-After"] = str(retry_after)
            return headers, (429, error_body("ERR_TOO_MANY_REQUESTS", "Rate limit exceeded."))
        self._record("our_ok")
        return headers, None

    def _count_status(self, status: int) -> None:
        counts = self._stats.status_counts
        counts[status] = counts.get(status, 0) + 1

    async def _reply(
        self, status: int, body: dict[str, Any] | str | bytes, headers: dict[str, str]
    ) -> web.Response:
        """Answer JSON (a dict), an HTML page (text) or raw bytes labelled as JSON."""
        self._count_status(status)
        if self._config.latency:
            await asyncio.sleep(self._config.latency)
        headers["Date"] = self._clock.date()
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html", headers=headers)
        if isinstance(body, bytes):
            return web.Response(
                status=status, body=body, content_type="application/json", headers=headers
            )
        return web.json_response(body, status=status, headers=headers)

    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        uid = request.match_info["uid"].lower()
        stats.deletes_by_uid[uid] = stats.deletes_by_uid.get(uid, 0) + 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._delete(request, uid)
        finally:
            stats.in_flight -= 1

    async def _delete(self, request: web.Request, uid: str) -> web.StreamResponse:
        headers, refusal = self._gate(request, deleting=True)
        if refusal is not None:
            return await self._reply(*refusal, headers)
        fault, position = self._dice.roll() if self._dice is not None else (None, 0.0)
        if fault is not None:
            self._stats.faults[fault.value] += 1
        if fault is Fault.RESET:
            return sever(request)
        if fault is Fault.FAIL:
            return await self._reply(*failure_answer(position), headers)
        if fault is Fault.THROTTLE:
            headers["Retry-After"] = self._fault_retry_after
            if self._window is not None:
                self._window.refusal_headers(headers)
            return await self._reply(
                429, error_body("ERR_TOO_MANY_REQUESTS", "Slow down."), headers
            )
        status, body = await self._apply(request, uid)
        if fault is Fault.DROP:
            return sever(request)
        if fault is Fault.SLOW:
            await asyncio.sleep(self._config.slow_seconds)
        return await self._answer_applied(request, status, body, headers)

    async def _answer_applied(
        self,
        request: web.Request,
        status: int,
        body: dict[str, Any] | str | bytes,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        if status == 200 and self._config.success_body == "huge":  # noqa: PLR2004
            self._count_status(status)
            return await stream_huge_answer(request, headers)
        return await self._reply(status, body, headers)

    async def _apply(
        self, request: web.Request, uid: str
    ) -> tuple[int, dict[str, Any] | str | bytes]:
        permanent = _permanent(await request.read())
        if permanent is None:
            self._stats.bad_requests += 1
            message = 'The body must be a JSON object whose "permanent" is a boolean.'
            return 400, error_body("ERR_BAD_REQUEST", message)
        self._stats.permanent_flags.setdefault(uid, []).append(permanent)
        if not self._is_active(uid):
            return 404, _uid_not_found(uid)
        self._stats.applied[uid] = "removed" if permanent else "deactivated"
        kind = self._config.success_body
        return 200, success_answer(
            "documented" if kind == "huge" else kind, uid, permanent=permanent
        )

    def _user(self, uid: str) -> dict[str, Any]:
        return {
            "uid": uid,
            "name": uid,
            "status": "offline",
            "role": "default",
            "createdAt": self._created_at,
        }

    async def get_user(self, request: web.Request) -> web.StreamResponse:
        headers, refusal = self._gate(request, deleting=False)
        if refusal is not None:
            return await self._reply(*refusal, headers)
        uid = request.match_info["uid"].lower()
        if not self._is_active(uid):
            return await self._reply(404, _uid_not_found(uid), headers)
        return await self._reply(200, {"data": self._user(uid)}, headers)

    async def list_users(self, request: web.Request) -> web.StreamResponse:
        headers, refusal = self._gate(request, deleting=False)
        if refusal is not None:
            return await self._reply(*refusal, headers)
        per_page = _per_page(request.query.get("perPage", "100"))
        if per_page is None:
            self._stats.bad_requests += 1
            message = f"perPage must be a whole number from 1 to {_MAX_PER_PAGE}."
            return await self._reply(400, error_body("ERR_BAD_REQUEST", message), headers)
        # A full scan, but only for this rare credential check: DELETEs stay O(1).
        active = [uid for uid in self._users if uid not in self._stats.applied]
        page = heapq.nsmallest(per_page, active)
        pagination = {
            "total": len(active),
            "count": len(page),
            "per_page": per_page,
            "current_page": 1,
            "total_pages": max(1, math.ceil(len(active) / per_page)),
        }
        body = {"data": [self._user(uid) for uid in page], "meta": {"pagination": pagination}}
        return await self._reply(200, body, headers)

    async def stats(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self._stats.as_json())

    @web.middleware
    async def front(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer for a portal or a redirecting proxy in front of the API, if one is set."""
        config = self._config
        if request.path == STATS_PATH or not (config.portal or config.redirect_to):
            return await handler(request)
        self._stats.requests += 1
        if config.redirect_to is not None:
            location = config.redirect_to.rstrip("/") + request.path_qs
            return await self._reply(307, "", {"Location": location})
        return await self._reply(200, PORTAL_PAGE, {})

    async def unmatched(self, request: web.Request) -> web.StreamResponse:
        self._stats.requests += 1
        self._stats.unmatched_paths += 1
        message = f"No route for {request.method} {request.path}."
        return await self._reply(404, error_body("ERR_NOT_FOUND", message), {})


STATS_PATH = "/_fake/stats"


def fetch_stats(base_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """Return a running fake's live counters (``GET /_fake/stats``), given its ``/v3`` base URL.

    A blocking read, for the tests and benches that watch a fake in another process.
    """
    root = base_url.removesuffix("/").removesuffix("/v3")
    with urllib.request.urlopen(root + STATS_PATH, timeout=timeout) as response:  # noqa: S310
        stats: dict[str, Any] = json.load(response)
    return stats


def build_app(config: FakeConfig) -> web.Application:
    """Build the fake's application; its live counters are ``app[STATS]``."""
    stats = FakeStats()
    fake = _Fake(config, stats)
    app = web.Application(middlewares=[fake.front])
    app[STATS] = stats
    app.cleanup_ctx.append(fake.lifetime)
    router = app.router
    router.add_get(STATS_PATH, fake.stats, allow_head=False)
    router.add_delete("/v3/users/{uid}", fake.delete_user)
    router.add_get("/v3/users/{uid}", fake.get_user, allow_head=False)
    router.add_get("/v3/users", fake.list_users, allow_head=False)
    # Last, so that it gets only what no endpoint took: other paths and wrong methods alike.
    router.add_route("*", "/{path:.*}", fake.unmatched)
    return app


class FakeServer:
    """Serve the fake over TCP: ``async with FakeServer(config) as server: ... server.base_url``.

    Port 0 picks a free port. ``start`` returns the base URL (``http://127.0.0.1:<port>/v3``);
    with ``tls`` (a server-side ``SSLContext``) it serves HTTPS instead.
    """

    def __init__(
        self,
        config: FakeConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._app = build_app(config)
        self._host = host
        self._port = port
        self._tls = tls
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def stats(self) -> FakeStats:
        """Return the live counters."""
        return self._app[STATS]

    @property
    def base_url(self) -> str:
        """Return the base URL; raise ``RuntimeError`` when the server is not running."""
        if self._base_url is None:
            raise RuntimeError("the fake server is not running")
        return self._base_url

    async def start(self) -> str:
        """Start listening and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the fake server is already running")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port, ssl_context=self._tls).start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._runner = runner
        scheme = "https" if self._tls else "http"
        self._base_url = f"{scheme}://{host}:{port}/v3"
        return self._base_url

    async def stop(self) -> None:
        """Stop listening and close every connection; a no-op when not running."""
        runner, self._runner, self._base_url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def load_users(path: Path) -> frozenset[str]:
    """Read lowercased UIDs: one per line, or a CSV whose header has a ``uid`` column (any case).

    A UTF-8 byte-order mark, CRLF line ends and blank lines are accepted.
    """
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    header = next(reader, [])
    rows: Iterable[list[str]] = reader
    names = [name.strip().lower() for name in header]
    if "uid" in names:
        column = names.index("uid")
    else:
        column = 0
        rows = itertools.chain([header], rows)
    uids = (row[column].strip().lower() for row in rows if len(row) > column)
    return frozenset(uid for uid in uids if uid)


async def serve(config: FakeConfig, *, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Serve until cancelled, calling ``ready`` with the base URL once listening."""
    async with FakeServer(config, host=host, port=port) as server:
        ready(server.base_url)
        await asyncio.Event().wait()
