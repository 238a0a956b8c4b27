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


def _http_date(value: str | None) -> float | None:
    """Parse an HTTP ``Date`` header into Unix seconds; None when absent or unreadable."""
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


def rate_info(headers: Any, *, now: float) -> RateInfo:
    """Read the rate-limit headers in either spelling CometChat documents.

    The ``Date`` header is read only with a limit: the pacer places the window on the server's
    clock with it, and an answer without a limit has nothing to pace.
    """
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
        server_date=_http_date(headers.get("Date")) if limit is not None else None,
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
    """A client middleware that counts how many times aiohttp put one request on the wire.

    aiohttp calls its middlewares once per send, including the one resend it makes on its own
    when a kept-alive connection drops mid-request (DELETE is idempotent to it). A connection
    that never opened sent nothing.
    """

    count: int = 0

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        sent = True
        try:
            return await handler(request)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            sent = False
            raise
        finally:
            self.count += sent


class Client:
    """CometChat calls over one caller-owned ``ClientSession``."""

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
                middlewares=(sends,),
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

    ``total`` covers the whole attempt; since workers never outnumber the connector's sockets,
    no time is spent waiting for a pool slot (aiohttp counts that wait against it). Only a new
    socket's connect gets a bound of its own: aiohttp's ``connect`` and ``sock_read`` timeouts
    would add a timer or two to every request (``sock_read`` re-arms one on each packet) and
    could fire no sooner than ``total`` for one small answer.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.concurrency,
        limit_per_host=settings.concurrency,
        ttl_dns_cache=300,
        ssl=_ssl_context(settings.ca_bundle),
    )
    timeout = aiohttp.ClientTimeout(total=settings.timeout, sock_connect=settings.timeout)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def _describe(exc: BaseException) -> str:
    """Name a transport error without echoing request details (headers are never in it)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:_MAX_MESSAGE] if text else type(exc).__name__
