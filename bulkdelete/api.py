"""One CometChat call: the URL, the headers, the body, and the answer reduced to an ``Answer``.

Only this module builds URLs and bodies. The UID always travels as exactly one percent-encoded
path segment, so no input can reach another path; the bulk calls carry UIDs in a JSON list
instead, in a body no larger than ``MAX_BULK_BODY`` (the 10 KB CometChat documents for request
bodies: ``bulk_cost`` says what a UID adds to it). Transport failures come back as answers with no
HTTP status (``outcome.TIMEOUT``, ``outcome.CONNECTION``, ``outcome.TLS``) rather than
exceptions, so retries and the audit see one kind of value.

An answer's body is read up to ``MAX_ANSWER_BYTES`` and no further (CometChat's answers are a
few hundred bytes); a longer one is ``outcome.TOO_LARGE`` and its connection is dropped. The body
is reduced to facts (``outcome.Body``): what it means is for ``outcome`` to decide. Every text
that came from the server (error code and message, transport error descriptions) has the API
key masked here, before anything can store or print it, and is made one plain line: the summary
and reports print it on a terminal, where an escape sequence could rewrite what the operator
reads (ANSI colours, cursor moves, a changed window title) and a bidi override could reorder it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import orjson

from bulkdelete.logs import Redaction
from bulkdelete.outcome import (
    BULK_CALLS,
    CONNECTION,
    TIMEOUT,
    TLS,
    TOO_LARGE,
    Answer,
    Body,
    BodyKind,
    Call,
    RateInfo,
)
from bulkdelete.settings import Settings

MAX_ANSWER_BYTES: Final = 64 * 1024
_JSON_HEADERS: Final = {"accept": "application/json", "content-type": "application/json"}
_BODIES: Final = {flag: orjson.dumps({"permanent": flag}) for flag in (True, False)}
MAX_BULK_BODY: Final = 10 * 1024  # CometChat documents request bodies up to 10 KB
_BULK_KEYS: Final = {
    Call.BULK_DEACTIVATE: "uidsToDeactivate",
    Call.BULK_REACTIVATE: "uidsToActivate",
}
# A bulk body's bytes besides its UIDs: the longer key, its quotes, colon and brackets.
BULK_FRAME: Final = len(orjson.dumps({"uidsToDeactivate": []}))
_MAX_MESSAGE: Final = 500
_MAX_CODE: Final = 100
_NOT_A_SEGMENT: Final = frozenset({"", ".", ".."})
# Control characters (C0, DEL, C1) and Unicode's bidi overrides and isolates; whitespace
# controls become a space, so a multi-line message stays readable on one line.
_UNSAFE: Final = {
    **dict.fromkeys((*range(0x20), *range(0x7F, 0xA0)), "\ufffd"),
    **dict.fromkeys((*range(0x202A, 0x202F), *range(0x2066, 0x206A)), "\ufffd"),
    **dict.fromkeys(map(ord, "\t\n\r"), " "),
}
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


def bulk_cost(uid: str) -> int:
    """Return the bytes ``uid`` adds to a bulk call's body: itself as JSON, and a comma."""
    return len(orjson.dumps(uid)) + 1


def _strings(value: object) -> tuple[str, ...]:
    return tuple(u for u in value if isinstance(u, str)) if isinstance(value, list) else ()


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


def _error_fields(error: object) -> tuple[str | None, str | None]:
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


def _parse(payload: bytes, *, bulk: bool = False) -> tuple[Body, str | None, str | None]:
    """Reduce a body to its facts, and ``error.code`` and ``error.message`` as written; the
    lists of a bulk call's answer only with ``bulk``."""
    if not payload.strip():
        return Body(BodyKind.EMPTY), None, None
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Body(BodyKind.NOT_JSON), None, None
    if not isinstance(parsed, dict):
        return Body(BodyKind.OTHER_JSON), None, None
    error = parsed.get("error")
    data = parsed.get("data")
    facts = data if isinstance(data, dict) else {}
    success, deactivated, user = (
        facts.get("success"),
        facts.get("deactivatedUids"),
        facts.get("uid"),
    )
    body = Body(
        BodyKind.OBJECT,
        error=error is not None,
        success=success if isinstance(success, bool) else None,
        deactivated=_strings(deactivated),
        user=user if isinstance(user, str) else None,
        listing=isinstance(data, list),
    )
    if bulk:
        body = dataclasses.replace(
            body,
            data_object=isinstance(data, dict),
            already_deactivated=_strings(facts.get("alreadyDeactivatedUids")),
            not_found=_strings(facts.get("notFound")),
            reactivated=_strings(facts.get("reactivatedUids")),
            not_deactivated=_strings(facts.get("nonDeactivatedUids")),
        )
    return body, *_error_fields(error)


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes | None:
    """Return the body, or None as soon as it proves longer than ``MAX_ANSWER_BYTES``."""
    declared = response.content_length
    if declared is not None and declared > MAX_ANSWER_BYTES:
        return None
    if declared is not None and "Content-Encoding" not in response.headers:
        # Read as sent: aiohttp stops at the declared length, which is within the cap. (A
        # compressed body may inflate past it, so it is read in chunks, counting as it goes.)
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            return None
    return bytes(body)


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
        self._redact = Redaction([api_key])

    async def delete_user(self, uid: str, *, permanent: bool) -> Answer:
        """Send one DELETE for a normalised UID and return its answer; never raises for I/O."""
        call = Call.ERASE if permanent else Call.DEACTIVATE
        return await self._call(
            "DELETE", user_url(self._base_url, uid), _BODIES[permanent], call=call, uid=uid
        )

    async def deactivate_users(self, uids: Sequence[str]) -> Answer:
        """Deactivate normalised UIDs with one ``DELETE /users`` (``uidsToDeactivate``)."""
        return await self._bulk("DELETE", Call.BULK_DEACTIVATE, uids)

    async def reactivate_users(self, uids: Sequence[str]) -> Answer:
        """Reactivate normalised UIDs with one ``PUT /users`` (``uidsToActivate``)."""
        return await self._bulk("PUT", Call.BULK_REACTIVATE, uids)

    async def _bulk(self, method: str, call: Call, uids: Sequence[str]) -> Answer:
        url = f"{self._base_url.rstrip('/')}/users"
        return await self._call(
            method, url, orjson.dumps({_BULK_KEYS[call]: list(uids)}), call=call
        )

    async def get_user(self, uid: str) -> Answer:
        """Send one ``GET /users/{uid}`` (a read-back after a delete); never raises for I/O."""
        return await self._call("GET", user_url(self._base_url, uid), None, call=Call.READ, uid=uid)

    async def check_access(self) -> Answer:
        """Send one harmless authenticated read (``GET /users?perPage=1``) to test the key."""
        url = f"{self._base_url.rstrip('/')}/users?perPage=1"
        return await self._call("GET", url, None, call=Call.CHECK)

    def _server_text(self, text: str | None, limit: int) -> str | None:
        """Return a text the server chose, with the key masked, one safe line, cut to ``limit``."""
        return None if text is None else self._redact(text).translate(_UNSAFE)[:limit]

    async def _call(
        self, method: str, url: str, body: bytes | None, *, call: Call, uid: str | None = None
    ) -> Answer:
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
                payload = await _read_bounded(response)
                status, headers = response.status, response.headers
                if payload is None:
                    response.close()  # the rest is never read: drop the connection, not pool it
        except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
            return self._failed(TLS, exc, sends, call, uid)
        except TimeoutError as exc:  # also aiohttp's Connection/SocketTimeoutError
            return self._failed(TIMEOUT, exc, sends, call, uid)
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed(CONNECTION, exc, sends, call, uid)
        rate = rate_info(headers, now=time.time())
        if payload is None:
            unread = f"the answer was longer than {MAX_ANSWER_BYTES} bytes and was not read"
            return Answer(
                status, TOO_LARGE, unread, rate=rate, sends=sends.count, call=call, uid=uid
            )
        facts, code, message = _parse(payload, bulk=call in BULK_CALLS)
        return Answer(
            status,
            self._server_text(code, _MAX_CODE),
            self._server_text(message, _MAX_MESSAGE),
            rate=rate,
            sends=sends.count,
            call=call,
            uid=uid,
            body=facts,
        )

    def _failed(
        self, code: str, exc: BaseException, sends: _Sends, call: Call, uid: str | None
    ) -> Answer:
        """Return the answer for a request that got no HTTP answer."""
        message = self._server_text(_describe(exc), _MAX_MESSAGE)
        return Answer(None, code, message, sends=sends.count, call=call, uid=uid)


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
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # Settings name the proxy; trust_env stays off, so aiohttp reads neither the
        # environment nor ~/.netrc, whose credentials it would send to the API host.
        proxy=settings.proxy,
        # What aiohttp buffers ahead of the reader: about one answer's worth, not megabytes.
        read_bufsize=MAX_ANSWER_BYTES,
    )


def _describe(exc: BaseException) -> str:
    """Name a transport error without echoing request details (headers are never in it)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
