"""One CometChat call: the URL, the rate headers, and the ``Client`` over mocked and real HTTP."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yarl
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from aioresponses_compat import CompatResp
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict

from bulkdelete.api import MAX_ANSWER_BYTES, Client, open_session, rate_info, user_url
from bulkdelete.logs import WITHHELD
from bulkdelete.outcome import (
    CONNECTION,
    TIMEOUT,
    TLS,
    TOO_LARGE,
    Body,
    BodyKind,
    Call,
    RateInfo,
)
from bulkdelete.settings import Secret, Settings

KEY = "test-key-7f3a9c"
BASE = "https://app.api-us.cometchat.io/v3"
ANY_URL = re.compile(r"^https://api\.test/")
NOW = 1_700_000_000.0


# --- user_url ---------------------------------------------------------------------------------

BASES = st.sampled_from([BASE, BASE + "/", "http://127.0.0.1:8080/v3"])
# A UID that is exactly "." or ".." cannot be one segment in a string URL: see the next test.
ONE_SEGMENT_UIDS = st.text(min_size=1).filter(lambda s: s not in {".", ".."})


@given(base=BASES, uid=ONE_SEGMENT_UIDS)
@example(base=BASE, uid="../x")
@example(base=BASE, uid="../../apikeys")
@example(base=BASE, uid="a/b")
@example(base=BASE, uid="?x=1")
@example(base=BASE, uid="#x")
@example(base=BASE, uid="%2F")
@example(base=BASE, uid="%2e%2e")
@example(base=BASE, uid="a b")
@example(base=BASE, uid="ünï-çødé")
@example(base=BASE, uid="..a")
@example(base=BASE, uid="\\..\\x")
def test_user_url_keeps_any_uid_in_one_segment(base: str, uid: str) -> None:
    """Parsed as aiohttp parses it, the URL is base + /users/ + one segment that decodes to uid."""
    base_url = yarl.URL(base.rstrip("/"))
    url = yarl.URL(user_url(base, uid))
    expected = (base_url.origin(), (*base_url.raw_parts, "users"), uid, "", "")
    assert expected == (
        url.origin(),
        url.raw_parts[:-1],
        url.parts[-1],
        url.raw_query_string,
        url.raw_fragment,
    )


@pytest.mark.parametrize("uid", ["", ".", ".."], ids=["empty", "dot", "dot-dot"])
def test_user_url_refuses_uids_that_cannot_be_one_segment(uid: str) -> None:
    """'', '.' and '..' would address /users or its parent (yarl drops dot segments), so refuse."""
    # yarl normalises "/users/.." to "/" and "/users/." to "/users/" even when written as %2E,
    # so the only safe answer for these is to refuse them rather than build a URL.
    with pytest.raises(ValueError):  # noqa: PT011  (any wording will do; the refusal matters)
        user_url(BASE, uid)


# --- rate_info --------------------------------------------------------------------------------


def headers(**values: str) -> CIMultiDict[str]:
    """Build response headers; keyword underscores become dashes (X_Rate_Limit -> X-Rate-Limit)."""
    return CIMultiDict({name.replace("_", "-"): value for name, value in values.items()})


def test_rate_info_reads_the_old_spelling() -> None:
    """X-Rate-Limit, X-Rate-Limit-Remaining and X-Rate-Limit-Reset are read."""
    got = rate_info(
        headers(
            X_Rate_Limit="10000", X_Rate_Limit_Remaining="9876", X_Rate_Limit_Reset="1700000060"
        ),
        now=NOW,
    )
    expected = RateInfo(limit=10000, remaining=9876, reset_at=1_700_000_060.0)
    assert expected == got


def test_rate_info_reads_the_new_spelling() -> None:
    """X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset are read."""
    got = rate_info(
        headers(X_RateLimit_Limit="500", X_RateLimit_Remaining="0", X_RateLimit_Reset="1700000060"),
        now=NOW,
    )
    expected = RateInfo(limit=500, remaining=0, reset_at=1_700_000_060.0)
    assert expected == got


def test_rate_info_without_headers_is_all_none() -> None:
    """An answer without rate headers gives an empty RateInfo."""
    expected = RateInfo()
    assert expected == rate_info(headers(), now=NOW)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"X_Rate_Limit": "600", "Date": "Tue, 14 Nov 2023 22:13:20 GMT"}, 1_700_000_000.0),
        ({"X_RateLimit_Limit": "600", "Date": "not a date"}, None),
        ({"Date": "Tue, 14 Nov 2023 22:13:20 GMT"}, None),  # no limit: nothing to pace
    ],
)
def test_rate_info_reads_the_server_date_with_a_limit(
    values: dict[str, str], expected: float | None
) -> None:
    """The Date header places the window on the server's clock, so it is read with a limit."""
    assert expected == rate_info(headers(**values), now=NOW).server_date


def test_rate_info_reset_in_milliseconds_becomes_seconds() -> None:
    """A reset given in epoch milliseconds is converted to epoch seconds."""
    got = rate_info(headers(X_Rate_Limit_Reset="1700000060500"), now=NOW)
    expected = 1_700_000_060.5
    assert expected == got.reset_at


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("0", 0.0), ("120", 120.0)])
def test_retry_after_as_delta_seconds(value: str, seconds: float) -> None:
    """Retry-After in delta-seconds is taken as a number of seconds."""
    assert seconds == rate_info(headers(Retry_After=value), now=NOW).retry_after


def test_retry_after_as_http_date() -> None:
    """Retry-After as an HTTP-date is turned into the seconds from now until then."""
    value = email.utils.formatdate(NOW + 30, usegmt=True)
    expected = 30.0
    assert expected == rate_info(headers(Retry_After=value), now=NOW).retry_after


def test_retry_after_as_a_past_http_date_is_zero() -> None:
    """An HTTP-date already past means retry now, never a negative wait."""
    value = email.utils.formatdate(NOW - 30, usegmt=True)
    expected = 0.0
    assert expected == rate_info(headers(Retry_After=value), now=NOW).retry_after


@pytest.mark.parametrize("junk", ["soon", "", "NaN", "inf", "-inf", "1e999", "Mon, 99 Foo"])
def test_junk_rate_values_are_ignored(junk: str) -> None:
    """Unparseable or non-finite header values are treated as absent."""
    got = rate_info(
        headers(
            X_Rate_Limit=junk,
            X_Rate_Limit_Remaining=junk,
            X_Rate_Limit_Reset=junk,
            Retry_After=junk,
        ),
        now=NOW,
    )
    expected = RateInfo()
    assert expected == got


def test_junk_in_one_spelling_falls_back_to_the_other() -> None:
    """A junk value under one spelling does not hide a good value under the other."""
    got = rate_info(headers(X_Rate_Limit="lots", X_RateLimit_Limit="600"), now=NOW)
    expected = 600
    assert expected == got.limit


# --- Client against aioresponses ---------------------------------------------------------------


@pytest.fixture
def mocked() -> Iterator[Any]:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, base_url="https://api.test/v3", api_key=KEY)


def only_call(mocked: Any) -> tuple[str, yarl.URL, dict[str, Any]]:
    """Return (method, url, kwargs) of the single request aioresponses saw."""
    calls = [(key, call) for key, calls in mocked.requests.items() for call in calls]
    assert len(calls) == 1, calls
    (method, url), call = calls[0]
    return method, url, call.kwargs


@pytest.mark.parametrize("permanent", [True, False])
async def test_delete_sends_the_documented_request(
    mocked: Any, client: Client, permanent: bool
) -> None:
    """DELETE /users/{uid} carries apikey, accept and content-type JSON, and a JSON boolean body."""
    mocked.delete(
        ANY_URL, status=200, payload={"data": {"success": True}}, response_class=CompatResp
    )

    await client.delete_user("alice-1", permanent=permanent)

    method, url, kwargs = only_call(mocked)
    sent_headers = {name.lower(): value for name, value in kwargs["headers"].items()}
    raw = kwargs["data"]
    assert isinstance(raw, bytes)
    body = orjson.loads(raw)
    expected = (
        "DELETE",
        yarl.URL("https://api.test/v3/users/alice-1"),
        {"apikey": KEY, "accept": "application/json", "content-type": "application/json"},
        {"permanent": permanent},
    )
    assert expected == (method, url, sent_headers, body)
    assert type(body["permanent"]) is bool  # a real JSON boolean, not the string "true"


async def test_check_access_sends_an_authenticated_read(mocked: Any, client: Client) -> None:
    """check_access sends GET /users?perPage=1 with the key and no body."""
    mocked.get(ANY_URL, status=200, payload={"data": []}, response_class=CompatResp)

    answer = await client.check_access()

    method, url, kwargs = only_call(mocked)
    sent_key = {k.lower(): v for k, v in kwargs["headers"].items()}["apikey"]
    expected = ("GET", "/v3/users", {"perPage": "1"}, KEY, None, 200, None)
    assert expected == (
        method,
        url.path,
        dict(url.query),
        sent_key,
        kwargs["data"],
        answer.http_status,
        answer.error_code,
    )


async def test_success_answer(mocked: Any, client: Client) -> None:
    """A 200 answer has its status, no error code and no message."""
    mocked.delete(
        ANY_URL,
        status=200,
        payload={"data": {"success": True, "message": "User with alice has been deleted."}},
        response_class=CompatResp,
    )
    answer = await client.delete_user("alice", permanent=True)
    expected = (200, None, None, Body(BodyKind.OBJECT, success=True), Call.ERASE, "alice")
    assert expected == (
        answer.http_status,
        answer.error_code,
        answer.message,
        answer.body,
        answer.call,
        answer.uid,
    )


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        (
            b'{"data": {"deactivatedUids": ["Alice", 7]}}',
            Body(BodyKind.OBJECT, deactivated=("Alice",)),
        ),
        (b'{"data": {"success": "true"}}', Body(BodyKind.OBJECT)),
        (b'{"data": {"uid": "alice", "name": "A"}}', Body(BodyKind.OBJECT, user="alice")),
        (b'{"data": [], "meta": {}}', Body(BodyKind.OBJECT, listing=True)),
        (b'{"error": {"code": "ERR_UID_NOT_FOUND"}}', Body(BodyKind.OBJECT, error=True)),
        (b"<html>Sign in</html>", Body(BodyKind.NOT_JSON)),
        (b'{"data": {"success": tr', Body(BodyKind.NOT_JSON)),
        (b" \r\n", Body(BodyKind.EMPTY)),
        (b"[true]", Body(BodyKind.OTHER_JSON)),
    ],
    ids=["deactivated", "string-true", "user", "list", "error", "html", "cut", "blank", "array"],
)
async def test_a_2xx_body_is_reduced_to_its_facts(
    mocked: Any, client: Client, payload: bytes, body: Body
) -> None:
    """Only JSON booleans, strings and lists count as facts; anything else is named by its kind."""
    mocked.delete(ANY_URL, status=200, body=payload, response_class=CompatResp)
    answer = await client.delete_user("alice", permanent=False)
    assert (body, Call.DEACTIVATE) == (answer.body, answer.call)


async def test_a_200_carrying_an_error_keeps_its_code(mocked: Any, client: Client) -> None:
    """error.code and error.message are read whatever the status, 200 included."""
    payload = {"error": {"code": "ERR_UID_NOT_FOUND", "message": "The UID alice does not exist."}}
    mocked.delete(ANY_URL, status=200, payload=payload, response_class=CompatResp)
    answer = await client.delete_user("alice", permanent=False)
    expected = (200, "ERR_UID_NOT_FOUND", "The UID alice does not exist.")
    assert expected == (answer.http_status, answer.error_code, answer.message)


async def test_read_and_check_say_what_was_asked(mocked: Any, client: Client) -> None:
    """get_user is a READ of its UID; check_access is the CHECK, with no UID."""
    mocked.get(ANY_URL, status=200, payload={"data": []}, repeat=True, response_class=CompatResp)
    read = await client.get_user("bob")
    checked = await client.check_access()
    expected = ((Call.READ, "bob"), (Call.CHECK, None))
    assert expected == ((read.call, read.uid), (checked.call, checked.uid))


async def test_error_body_is_parsed(mocked: Any, client: Client) -> None:
    """An error answer keeps the status, error.code and error.message."""
    body = {"error": {"code": "AUTH_ERR_NO_ACCESS", "message": "no access", "devMessage": "x"}}
    mocked.delete(ANY_URL, status=403, payload=body, response_class=CompatResp)
    answer = await client.delete_user("alice", permanent=True)
    expected = (403, "AUTH_ERR_NO_ACCESS", "no access")
    assert expected == (answer.http_status, answer.error_code, answer.message)


async def test_long_error_message_is_truncated(mocked: Any, client: Client) -> None:
    """A huge error.message is kept as a bounded prefix, not whole."""
    long_message = "".join(f"{n:05d}" for n in range(2000))  # 10,000 characters
    body = {"error": {"code": "ERR_BAD_REQUEST", "message": long_message}}
    mocked.delete(ANY_URL, status=400, payload=body, response_class=CompatResp)
    answer = await client.delete_user("alice", permanent=True)
    assert answer.message is not None
    assert 0 < len(answer.message) <= 1000
    assert long_message[: len(answer.message)] == answer.message


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'{"error": "flat string"}', b"null"],
    ids=["html", "empty", "list", "flat-error", "null"],
)
async def test_unexpected_error_bodies_give_no_code(
    mocked: Any, client: Client, body: bytes
) -> None:
    """An error body that is not CometChat's error object yields no code and no message."""
    mocked.delete(ANY_URL, status=502, body=body, response_class=CompatResp)
    answer = await client.delete_user("alice", permanent=True)
    expected = (502, None, None)
    assert expected == (answer.http_status, answer.error_code, answer.message)


async def test_rate_headers_reach_the_answer(mocked: Any, client: Client) -> None:
    """A 429's Retry-After and rate headers are in the answer's RateInfo."""
    mocked.delete(
        ANY_URL,
        status=429,
        payload={"error": {"code": "ERR_TOO_MANY_REQUESTS", "message": "slow down"}},
        headers={"Retry-After": "5", "X-Rate-Limit": "10000", "X-Rate-Limit-Remaining": "0"},
        response_class=CompatResp,
    )
    answer = await client.delete_user("alice", permanent=True)
    expected = (429, "ERR_TOO_MANY_REQUESTS", 10000, 0, 5.0)
    assert expected == (
        answer.http_status,
        answer.error_code,
        answer.rate.limit,
        answer.rate.remaining,
        answer.rate.retry_after,
    )


def _tls_errors() -> list[Exception]:
    key = ConnectionKey("api.test", 443, True, True, None, None, None)
    return [
        aiohttp.ClientConnectorCertificateError(
            key, ssl.SSLCertVerificationError(1, "certificate verify failed")
        ),
        aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, "wrong version number")),
    ]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TimeoutError(), TIMEOUT),
        (aiohttp.ServerTimeoutError("read timed out"), TIMEOUT),
        (aiohttp.ConnectionTimeoutError("connect timed out"), TIMEOUT),
        (aiohttp.SocketTimeoutError("sock_read timed out"), TIMEOUT),
        (aiohttp.ServerDisconnectedError(), CONNECTION),
        (aiohttp.ClientConnectionError("Connection refused"), CONNECTION),
        (aiohttp.ClientPayloadError("truncated body"), CONNECTION),
        (ConnectionResetError(104, "Connection reset by peer"), CONNECTION),
        *((error, TLS) for error in _tls_errors()),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_transport_errors_become_answers(
    mocked: Any, client: Client, error: Exception, code: str
) -> None:
    """Timeouts, dropped connections and TLS failures come back as answers with no status."""
    mocked.delete(ANY_URL, exception=error)
    answer = await client.delete_user("alice", permanent=True)
    expected = (None, code, True)
    assert expected == (
        answer.http_status,
        answer.error_code,
        type(error).__name__ in (answer.message or ""),
    )


async def test_transport_error_message_never_shows_the_key(mocked: Any, client: Client) -> None:
    """The description of a transport error names the error, never the request's headers."""
    mocked.delete(ANY_URL, exception=aiohttp.ServerDisconnectedError())
    answer = await client.delete_user("alice", permanent=True)
    assert KEY not in (answer.message or "")


# --- the server's words never carry the key -----------------------------------------------------

ODD_KEY = "Zq8v/K3n+W5tR&1yH7pL"  # with characters that encodings change


@pytest.fixture
async def odd_client() -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, base_url="https://api.test/v3", api_key=ODD_KEY)


@pytest.mark.parametrize(
    ("written", "masked"),
    [
        (ODD_KEY, "The key *** does not exist."),
        (ODD_KEY.upper(), "The key *** does not exist."),
        ("Zq8v%2FK3n%2BW5tR%261yH7pL", "The key *** does not exist."),
        ("zq8v%2fk3n%2bw5tr%261yh7pl", "The key *** does not exist."),
        ("Zq8v/K3n+W5tR&amp;1yH7pL", "The key *** does not exist."),
        ("Zq8v%252FK3n%252BW5tR%25261yH7pL", WITHHELD),
        ("".join(f"%{ord(c):02X}" for c in ODD_KEY), WITHHELD),
    ],
    ids=["plain", "upper", "percent", "percent-lower", "html", "twice-encoded", "all-encoded"],
)
async def test_the_key_is_masked_in_error_messages_in_any_encoding(
    mocked: Any, odd_client: Client, written: str, masked: str
) -> None:
    """A message quoting the key, however encoded, reaches the answer masked or withheld."""
    payload = {
        "error": {
            "code": "AUTH_ERR_APIKEY_NOT_FOUND",
            "message": f"The key {written} does not exist.",
        }
    }
    mocked.delete(ANY_URL, status=404, payload=payload, response_class=CompatResp)
    answer = await odd_client.delete_user("alice", permanent=True)
    assert masked == answer.message


async def test_the_key_is_masked_in_the_error_code_too(mocked: Any, odd_client: Client) -> None:
    """A hostile server can put anything in error.code: the key is masked and the code cut short."""
    payload = {"error": {"code": f"ERR_{ODD_KEY}_" + "X" * 500}}
    mocked.delete(ANY_URL, status=400, payload=payload, response_class=CompatResp)
    answer = await odd_client.delete_user("alice", permanent=True)
    assert answer.error_code is not None
    expected = ("ERR_***_XXX", 100)
    assert expected == (answer.error_code[:11], len(answer.error_code))


async def test_a_servers_words_reach_the_terminal_as_one_plain_line(
    mocked: Any, client: Client
) -> None:
    """Escape sequences, newlines and bidi overrides in error.code and message are defused."""
    payload = {
        "error": {
            "code": "ERR_\x1b[2J\x1b]0;owned\x07",
            "message": "line one\r\nline two \x1b[31mred\x1b[0m \u202eevil\u202c \x9b1m",
        }
    }
    mocked.delete(ANY_URL, status=400, payload=payload, response_class=CompatResp)
    answer = await client.delete_user("alice", permanent=True)
    expected = (
        "ERR_\ufffd[2J\ufffd]0;owned\ufffd",
        "line one  line two \ufffd[31mred\ufffd[0m \ufffdevil\ufffd \ufffd1m",
    )
    assert expected == (answer.error_code, answer.message)


async def test_the_key_is_masked_in_a_long_message_before_it_is_cut(
    mocked: Any, odd_client: Client
) -> None:
    """A key straddling the cut-off point leaves no prefix of itself behind."""
    message = "x" * 490 + ODD_KEY
    payload = {"error": {"code": "ERR_BAD_REQUEST", "message": message}}
    mocked.delete(ANY_URL, status=400, payload=payload, response_class=CompatResp)
    answer = await odd_client.delete_user("alice", permanent=True)
    expected = "x" * 490 + "***"
    assert expected == answer.message


async def test_the_key_is_masked_in_transport_errors(mocked: Any, odd_client: Client) -> None:
    """A transport error whose text quotes the key (a proxy's words, say) is masked."""
    mocked.delete(ANY_URL, exception=aiohttp.ClientConnectionError(f"proxy refused key {ODD_KEY}"))
    answer = await odd_client.delete_user("alice", permanent=True)
    expected = (CONNECTION, "ClientConnectionError: proxy refused key ***")
    assert expected == (answer.error_code, answer.message)


# --- Client against a real server on 127.0.0.1 --------------------------------------------------


async def _answer_from(handler: Any) -> tuple[Any, ...]:
    """Serve ``handler`` on loopback; send two DELETEs through one session; return both answers."""
    app = web.Application()
    app.router.add_delete("/v3/users/{uid}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    settings = Settings(
        base_url=str(server.make_url("/v3")), api_key=Secret(KEY), audit_path=Path("unused")
    )
    try:
        async with open_session(settings) as session:
            client = Client(session, base_url=settings.base_url, api_key=KEY)
            first = await client.delete_user("alice", permanent=False)
            second = await client.delete_user("bob", permanent=False)
    finally:
        await server.close()
    return first, second


async def _streamed(request: web.Request, size: int) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = "application/json"
    await response.prepare(request)
    try:
        await response.write(b'{"data": {"success": true, "message": "')
        for _ in range(size // 4096):
            await response.write(b"x" * 4096)
        await response.write(b'"}}')
    except ConnectionError:
        pass  # the client hung up, as it should
    return response


@pytest.mark.parametrize("size", [MAX_ANSWER_BYTES, 8 * 1024 * 1024], ids=["just-over", "8MB"])
async def test_a_streamed_answer_over_the_cap_is_not_read(size: int) -> None:
    """A success body longer than the cap, sent chunked, is TOO_LARGE; the next request works."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return await _streamed(request, size)
        return web.json_response({"data": {"success": True}})

    first, second = await _answer_from(handler)
    expected = ((200, TOO_LARGE, BodyKind.NONE), (200, None, BodyKind.OBJECT))
    assert expected == (
        (first.http_status, first.error_code, first.body.kind),
        (second.http_status, second.error_code, second.body.kind),
    )


async def test_an_answer_declaring_a_length_over_the_cap_is_not_read() -> None:
    """A Content-Length over the cap is refused before a byte of the body is read."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"{}" + b" " * MAX_ANSWER_BYTES, content_type="application/json")

    first, _ = await _answer_from(handler)
    expected = (200, TOO_LARGE)
    assert expected == (first.http_status, first.error_code)


async def test_a_small_compressed_answer_that_inflates_past_the_cap_is_not_read() -> None:
    """The cap holds for what the body inflates to: a 20 KB gzip of 20 MB is TOO_LARGE."""
    inflated = b'{"data": {"success": true, "message": "' + b"0" * 20_000_000 + b'"}}'
    packed = gzip.compress(inflated)

    async def handler(_request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip"}
        return web.Response(body=packed, content_type="application/json", headers=headers)

    first, _ = await _answer_from(handler)
    expected = (200, TOO_LARGE, True)
    assert expected == (first.http_status, first.error_code, len(packed) < MAX_ANSWER_BYTES)


async def test_an_answer_of_exactly_the_cap_is_read() -> None:
    """The cap is inclusive: a body of MAX_ANSWER_BYTES is read and parsed."""
    body = b'{"data": {"success": true}}'

    async def handler(_request: web.Request) -> web.StreamResponse:
        padded = body + b" " * (MAX_ANSWER_BYTES - len(body))
        return web.Response(body=padded, content_type="application/json")

    first, _ = await _answer_from(handler)
    expected = (200, None, Body(BodyKind.OBJECT, success=True))
    assert expected == (first.http_status, first.error_code, first.body)


@dataclass
class Seen:
    """What the loopback server received."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    drop_first: bool = False
    hold: bool = False  # keep the request open until ``release`` is set
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def loopback() -> AsyncIterator[tuple[str, Seen]]:
    """A tiny real server; with ``drop_first`` it closes the first connection mid-request."""
    seen = Seen()

    async def delete_user(request: web.Request) -> web.StreamResponse:
        seen.bodies.append(await request.read())
        seen.headers.append({k.lower(): v for k, v in request.headers.items()})
        if seen.drop_first and len(seen.bodies) == 1:
            assert request.transport is not None
            request.transport.close()  # the answer below never reaches the client
            return web.Response(status=500)
        if seen.hold:
            seen.arrived.set()
            await seen.release.wait()
        uid = request.match_info["uid"]
        return web.json_response({"data": {"success": True, "message": f"{uid} deleted"}})

    app = web.Application()
    app.router.add_delete("/v3/users/{uid}", delete_user)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/v3")), seen
    finally:
        await server.close()


async def test_real_request_counts_one_send(loopback: tuple[str, Seen]) -> None:
    """Over a real connection one normal request is one send, and the server sees key and body."""
    base_url, seen = loopback
    async with aiohttp.ClientSession() as session:
        answer = await Client(session, base_url=base_url, api_key=KEY).delete_user(
            "alice", permanent=True
        )
    expected = (200, None, 1, [{"permanent": True}], KEY, "application/json")
    assert expected == (
        answer.http_status,
        answer.error_code,
        answer.sends,
        [orjson.loads(body) for body in seen.bodies],
        seen.headers[0]["apikey"],
        seen.headers[0]["content-type"],
    )


async def test_real_resend_after_a_dropped_connection_counts_two(
    loopback: tuple[str, Seen],
) -> None:
    """When the server drops the first connection mid-request, aiohttp resends: sends == 2."""
    base_url, seen = loopback
    seen.drop_first = True
    async with aiohttp.ClientSession() as session:
        answer = await Client(session, base_url=base_url, api_key=KEY).delete_user(
            "alice", permanent=False
        )
    # The server got the request twice (once dropped, once answered) and the answer is the 200.
    expected = (200, None, 2, [{"permanent": False}] * 2)
    assert expected == (
        answer.http_status,
        answer.error_code,
        answer.sends,
        [orjson.loads(body) for body in seen.bodies],
    )


async def test_real_timeout_after_the_request_left_counts_one_send(
    loopback: tuple[str, Seen],
) -> None:
    """A request the server received but never answered in time was sent: sends == 1."""
    base_url, seen = loopback
    seen.hold = True
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        answer = await Client(session, base_url=base_url, api_key=KEY).delete_user(
            "alice", permanent=True
        )
    seen.release.set()
    expected = (None, TIMEOUT, 1, 1)
    assert expected == (answer.http_status, answer.error_code, answer.sends, len(seen.bodies))


async def test_real_connection_refused_is_a_connection_answer() -> None:
    """A port nobody listens on gives a CONNECTION answer, not an exception."""
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    base_url = str(server.make_url("/v3"))
    await server.close()  # the port is now closed
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        answer = await Client(session, base_url=base_url, api_key=KEY).delete_user(
            "alice", permanent=True
        )
    expected = (None, CONNECTION, 0)
    assert expected == (answer.http_status, answer.error_code, answer.sends)


async def test_a_redirect_is_not_followed_to_another_host() -> None:
    """A 307 to another origin is the answer: the DELETE and its key never reach that host."""
    elsewhere: list[str | None] = []

    async def record(request: web.Request) -> web.StreamResponse:
        elsewhere.append(request.headers.get("apikey"))
        return web.json_response({"data": {"success": True}})

    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", record)
    other = TestServer(other_app, host="127.0.0.1", port=0)
    await other.start_server()

    async def redirect(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(str(other.make_url("/collect")))

    api_app = web.Application()
    api_app.router.add_route("*", "/{tail:.*}", redirect)
    api = TestServer(api_app, host="127.0.0.1", port=0)
    await api.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, base_url=str(api.make_url("/v3")), api_key=KEY)
            answer = await client.delete_user("alice", permanent=True)
    finally:
        await api.close()
        await other.close()
    expected: tuple[int, list[str | None]] = (307, [])
    assert expected == (answer.http_status, elsewhere)


async def test_cancelling_a_delete_in_flight_raises_cancelled_error(
    loopback: tuple[str, Seen],
) -> None:
    """Cancelling a delete while the server holds it raises CancelledError, not an answer."""
    base_url, seen = loopback
    seen.hold = True
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(
            Client(session, base_url=base_url, api_key=KEY).delete_user("alice", permanent=True)
        )
        await seen.arrived.wait()  # the request is on the server: the client is mid-call
        task.cancel()
        try:
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            seen.release.set()
