"""Serving the fake: its application, the TCP server around it, and what stands in front of it.

``build_app`` joins the gate, the users, the live traffic and each endpoint module's routes.

In front of the API (each a flag, off by default)
    ``portal`` answers every request but the stats 200 with an HTML page, as a captive portal
    does; ``redirect_to`` answers each ``307`` to that URL followed by the request's path and
    query, as a redirecting proxy does. Neither reaches the API: nothing is counted in the
    window or applied.

``latency`` delays every answer but the stats. ``GET /_fake/stats`` (no key, not counted) returns
``FakeStats.as_json()``. Any other path or method is a 404 counted in ``unmatched_paths``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bulkdelete.fake.answers import PORTAL_PAGE, error_body
from bulkdelete.fake.bulk_endpoints import BulkEndpoints
from bulkdelete.fake.config import FakeConfig
from bulkdelete.fake.gate import Gate
from bulkdelete.fake.live import LiveTraffic
from bulkdelete.fake.stats import STATS, STATS_PATH, FakeStats
from bulkdelete.fake.user_endpoints import UserEndpoints
from bulkdelete.fake.users import Users

__all__ = ["FakeServer", "build_app", "serve"]

# Handlers still running at stop (a slow fault) get this long before they are cancelled.
_SHUTDOWN_GRACE = 0.25


def _front(gate: Gate) -> Middleware:
    """Return the middleware that answers for a portal or a redirecting proxy, if one is set."""
    config = gate.config

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == STATS_PATH or not (config.portal or config.redirect_to):
            return await handler(request)
        gate.stats.requests += 1
        if config.redirect_to is not None:
            location = config.redirect_to.rstrip("/") + request.path_qs
            return await gate.reply(307, "", {"Location": location})
        return await gate.reply(200, PORTAL_PAGE, {})

    return front


def _unmatched(gate: Gate) -> Handler:
    """Return the handler of every path and method that no endpoint takes."""

    async def unmatched(request: web.Request) -> web.StreamResponse:
        gate.stats.requests += 1
        gate.stats.unmatched_paths += 1
        message = f"No route for {request.method} {request.path}."
        return await gate.reply(404, error_body("ERR_NOT_FOUND", message), {})

    return unmatched


def build_app(config: FakeConfig) -> web.Application:
    """Build the fake's application; its live counters are ``app[STATS]``."""
    stats = FakeStats()
    gate = Gate(config, stats)
    users = Users(config, stats, created_at=int(gate.clock.now()))
    app = web.Application(middlewares=[_front(gate)])
    app[STATS] = stats
    app.cleanup_ctx.append(LiveTraffic(gate).lifetime)

    async def stats_page(_request: web.Request) -> web.StreamResponse:
        return web.json_response(stats.as_json())

    router = app.router
    router.add_get(STATS_PATH, stats_page, allow_head=False)
    for endpoints in (UserEndpoints(gate, users), BulkEndpoints(gate, users)):
        router.add_routes(endpoints.routes())
    # Last, so that it gets only what no endpoint took: other paths and wrong methods alike.
    router.add_route("*", "/{path:.*}", _unmatched(gate))
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


async def serve(config: FakeConfig, *, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Serve until cancelled, calling ``ready`` with the base URL once listening."""
    async with FakeServer(config, host=host, port=port) as server:
        ready(server.base_url)
        await asyncio.Event().wait()
