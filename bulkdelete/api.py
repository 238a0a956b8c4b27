"""One CometChat call: the URL, the headers, the body, and the answer reduced to an ``Answer``.

Only this module builds URLs. The UID always travels as exactly one percent-encoded path
segment, so no input can reach another path. Transport failures come back as answers with no
HTTP status (``outcome.TIMEOUT``, ``outcome.CONNECTION``, ``outcome.TLS``) rather than
exceptions, so retries and the audit see one kind of value.
"""

from __future__ import annotations

import email.utils
import math
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import orjson

from bulkdelete.outcome import CONNECTION, TIMEOUT, TLS, Answer, RateInfo
from bulkdelete.settings import Settings

_JSON_HEADERS: Final = {"accept": "application/json", "content-type": "application/json"}
_BODIES: Final = {flag: orjson.dumps({"permanent": flag}) for flag in (True, False)}
_MAX_MESSAGE: Final = 500
_NOT_A_SEGMENT: Final = frozenset({"", ".", ".."})
# Values above this are milliseconds since the epoch, not seconds.
_EPOCH_MS_THRESHOLD: Final = 1e11


def user_url(base_url: str, uid: str) -> str:
    """Return ``<base_url>/users/<uid>`` with the UID percent-encoded as one path segment.

    Raises ``ValueError`` for ``''``, ``'.'`` and ``'..'``: no encoding keeps them one segment
    (URL libraries resolve dot segments), and they are never valid UIDs anyway.
    """
    if uid in _NOT_A_SEGMENT:
        raise ValueError(f"{uid!r} cannot be sent as a user id")
    return f"{base_url.rstrip('/')}/users/{quote(uid, safe='')}"


def _header_number(headers: Any, *names: str) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            return number
    return None


def _retry_after(value: str | None, now: float) -> float | None:
    """Parse a Retry-After value: delta-seconds or an HTTP-date (RFC 9110, 10.2.3)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def rate_info(headers: Any, *, now: float) -> RateInfo:
    """Read the rate-limit headers in either spelling CometChat documents."""
    limit = _header_number(headers, "X-Rate-Limit", "X-RateLimit-Limit")
    remaining = _header_number(headers, "X-Rate-Limit-Remaining", "X-RateLimit-Remaining")
    reset = _header_number(headers, "X-Rate-Limit-Reset", "X-RateLimit-Reset")
    if reset is not None and reset > _EPOCH_MS_THRESHOLD:
        reset /= 1000
    return RateInfo(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_at=reset,
        retry_after=_retry_after(headers.get("Retry-After"), now),
    )


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, None
    code = error.get("code")
    message = error.get("message")
    return (
        code if isinstance(code, str) else None,
        message[:_MAX_MESSAGE] if isinstance(message, str) else None,
    )


@dataclass(slots=True)
class _Sends:
    """How many times aiohttp put one request on the wire (it resends DELETE once on its own)."""

    count: int = 0


async def _on_headers_sent(
    _session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    _params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    sends = ctx.trace_request_ctx
    if isinstance(sends, _Sends):
        sends.count += 1


def send_counter() -> aiohttp.TraceConfig:
    """Return the trace config that lets ``Client`` see aiohttp's silent resends."""
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_on_headers_sent)
    return trace


class Client:
    """CometChat calls over one caller-owned ``ClientSession``.

    The session must be created with ``trace_configs=[send_counter()]`` for ``Answer.sends`` to be
    counted; without it ``sends`` stays 0.
    """

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str) -> None:
        self._session = session
        self._base_url = base_url
        self._headers = {**_JSON_HEADERS, "apikey": api_key}

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer:
        """Send one DELETE for a normalised UID and return its answer; never raises for I/O."""
        return await self._call("DELETE", user_url(self._base_url, uid), _BODIES[permanent])

    async def get_user(self, uid: str) -> Answer:
        """Send one ``GET /users/{uid}`` (a read-back after a delete); never raises for I/O."""
        return await self._call("GET", user_url(self._base_url, uid), None)

    async def check_access(self) -> Answer:
        """Send one harmless authenticated read (``GET /users?perPage=1``) to test the key."""
        return await self._call("GET", f"{self._base_url.rstrip('/')}/users?perPage=1", None)

    async def _call(self, method: str, url: str, body: bytes | None) -> Answer:
        sends = _Sends()
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=self._headers,
                trace_request_ctx=sends,
                allow_redirects=False,  # a redirect must never carry the key to another host
            ) as response:
                payload = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
            return Answer(None, TLS, _describe(exc), sends=sends.count)
        except TimeoutError as exc:  # also aiohttp's Connection/SocketTimeoutError
            return Answer(None, TIMEOUT, _describe(exc), sends=sends.count)
        except (aiohttp.ClientError, OSError) as exc:
            return Answer(None, CONNECTION, _describe(exc), sends=sends.count)
        code, message = (None, None) if status < 400 else _error_fields(payload)  # noqa: PLR2004
        return Answer(
            status, code, message, rate=rate_info(headers, now=time.time()), sends=sends.count
        )


def _ssl_context(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    if ca_bundle is None:
        return True  # aiohttp's default: verified against the system store
    return ssl.create_default_context(cafile=str(ca_bundle))


def open_session(settings: Settings) -> aiohttp.ClientSession:
    """Return the run's one ``ClientSession``, sized so requests never queue for a socket.

    Timeouts cover the whole attempt; since workers never outnumber the connector's sockets,
    no time is spent waiting for a pool slot (aiohttp counts that wait against the timeout).
    """
    connector = aiohttp.TCPConnector(
        limit=settings.concurrency,
        limit_per_host=settings.concurrency,
        ttl_dns_cache=300,
        ssl=_ssl_context(settings.ca_bundle),
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.timeout,
        connect=settings.timeout,
        sock_connect=settings.timeout,
        sock_read=settings.timeout,
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trace_configs=[send_counter()]
    )


def _describe(exc: BaseException) -> str:
    """Name a transport error without echoing request details (headers are never in it)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:_MAX_MESSAGE] if text else type(exc).__name__
