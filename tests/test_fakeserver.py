"""The fake CometChat server, driven over loopback by a real aiohttp client."""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkdelete.fake import (
    PORTAL_PAGE,
    FakeConfig,
    FakeServer,
    load_users,
    retry_after_text,
    serve,
    stream_huge_answer,
)

KEY = "fake-api-key"
OLD = ("X-Rate-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")
NEW = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

Start = Callable[..., Awaitable[tuple[FakeServer, str]]]


def skew_for(window: float, phase: float) -> float:
    """Return a clock skew that puts the server ``phase`` seconds into one of its windows now.

    Tests that count requests per window use it to stay clear of a window's edge.
    """
    return phase - time.time() % window


class Answer:
    """What the client got: status, headers and the decoded body."""

    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def code(self) -> str:
        """Return the error code of an error body."""
        return str(self.body["error"]["code"])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[FakeServer] = []

    async def _start(**settings: Any) -> tuple[FakeServer, str]:
        server = FakeServer(FakeConfig(**settings))
        servers.append(server)
        return server, await server.start()

    yield _start
    for server in servers:
        await server.stop()


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    key: str | None = KEY,
    body: str | None = '{"permanent": false}',
) -> Answer:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["apikey"] = key
    async with session.request(method, url, headers=headers, data=body) as response:
        payload = await response.json() if response.content_type == "application/json" else None
        return Answer(response.status, dict(response.headers), payload)


async def test_delete_deactivates_an_active_user(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A DELETE without permanent deactivates the user, matched case-insensitively."""
    server, base = await start(users=frozenset({"Alice"}))
    answer = await call(session, "DELETE", f"{base}/users/ALICE")
    assert (answer.status, answer.body) == (
        200,
        {"data": {"success": True, "message": "User with alice has been deleted successfully."}},
    )
    assert server.stats.applied == {"alice": "deactivated"}
    assert (await call(session, "GET", f"{base}/users/alice")).code == "ERR_UID_NOT_FOUND"


async def test_second_delete_is_uid_not_found(session: aiohttp.ClientSession, start: Start) -> None:
    """Deactivating a deactivated user again answers 404 ERR_UID_NOT_FOUND."""
    server, base = await start(users=frozenset({"bob"}))
    await call(session, "DELETE", f"{base}/users/bob")
    again = await call(session, "DELETE", f"{base}/users/bob")
    assert (again.status, again.code) == (404, "ERR_UID_NOT_FOUND")
    assert server.stats.deletes_by_uid == {"bob": 2}
    assert server.stats.applied == {"bob": "deactivated"}


@pytest.mark.parametrize(
    ("settings", "status", "state"),
    [({}, 200, "removed"), ({"deactivated_not_found": True}, 404, "deactivated")],
)
async def test_permanent_delete_of_a_deactivated_user(
    session: aiohttp.ClientSession,
    start: Start,
    settings: dict[str, Any],
    status: int,
    state: str,
) -> None:
    """A permanent DELETE erases a deactivated user, as CometChat's own tests show; in the
    deactivated_not_found mode it answers 404 and leaves the user deactivated."""
    server, base = await start(users=frozenset({"bob"}), **settings)
    await call(session, "DELETE", f"{base}/users/bob")
    again = await call(session, "DELETE", f"{base}/users/bob", body='{"permanent": true}')
    assert (again.status, server.stats.applied) == (status, {"bob": state})


async def test_permanent_flags_are_recorded(session: aiohttp.ClientSession, start: Start) -> None:
    """permanent true removes, a missing body or key means false, and every value is recorded."""
    server, base = await start(users=frozenset({"a", "b", "c"}))
    await call(session, "DELETE", f"{base}/users/a", body='{"permanent": true}')
    await call(session, "DELETE", f"{base}/users/b", body=None)
    await call(session, "DELETE", f"{base}/users/c", body="{}")
    assert server.stats.applied == {"a": "removed", "b": "deactivated", "c": "deactivated"}
    assert server.stats.permanent_flags == {"a": [True], "b": [False], "c": [False]}


async def test_all_exist_accepts_any_uid_once(session: aiohttp.ClientSession, start: Start) -> None:
    """With all_exist every UID exists until it is deleted."""
    _, base = await start(all_exist=True)
    first = await call(session, "DELETE", f"{base}/users/anyone")
    second = await call(session, "DELETE", f"{base}/users/anyone")
    assert (first.status, second.status) == (200, 404)


@pytest.mark.parametrize("status", [404, 401])
async def test_wrong_key_is_apikey_not_found(
    session: aiohttp.ClientSession, start: Start, status: int
) -> None:
    """A wrong key answers AUTH_ERR_APIKEY_NOT_FOUND with the configured status, 404 by default."""
    server, base = await start(users=frozenset({"x"}), bad_key_status=status)
    answer = await call(session, "DELETE", f"{base}/users/x", key="wrong")
    assert (answer.status, answer.code) == (status, "AUTH_ERR_APIKEY_NOT_FOUND")
    assert server.stats.applied == {}


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_key_is_empty_apikey(
    session: aiohttp.ClientSession, start: Start, key: str | None
) -> None:
    """A missing or empty apikey header answers 401 AUTH_ERR_EMPTY_APIKEY."""
    _, base = await start(users=frozenset({"x"}))
    answer = await call(session, "GET", f"{base}/users/x", key=key)
    assert (answer.status, answer.code) == (401, "AUTH_ERR_EMPTY_APIKEY")


@pytest.mark.parametrize("body", ['{"permanent": "false"}', '{"permanent": null}', "[]", "nope"])
async def test_invalid_body_is_bad_request(
    session: aiohttp.ClientSession, start: Start, body: str
) -> None:
    """A permanent that is not a JSON boolean, or a body that is not an object, answers 400."""
    server, base = await start(users=frozenset({"x"}))
    answer = await call(session, "DELETE", f"{base}/users/x", body=body)
    assert (answer.status, answer.code) == (400, "ERR_BAD_REQUEST")
    assert (server.stats.applied, server.stats.bad_requests) == ({}, 1)


@pytest.mark.parametrize(
    ("style", "sent", "absent"), [("old", OLD, NEW), ("new", NEW, OLD), ("both", OLD + NEW, ())]
)
async def test_limit_answers_429_with_headers(
    session: aiohttp.ClientSession,
    start: Start,
    style: str,
    sent: tuple[str, ...],
    absent: tuple[str, ...],
) -> None:
    """Limit and remaining come on every answer; Retry-After and the reset only on the 429.

    The window is the server clock's minute, so the reset is a whole minute of Unix time.
    """
    skew = skew_for(60, 20.0)
    server, base = await start(all_exist=True, limit=2, header_style=style, clock_skew=skew)
    answers = [await call(session, "DELETE", f"{base}/users/u{n}") for n in range(3)]
    assert [answer.status for answer in answers] == [200, 200, 429]
    assert answers[2].code == "ERR_TOO_MANY_REQUESTS"
    limit_name, remaining_name, reset_name = sent[:3]
    resets = [name for name in sent if name.endswith("Reset")]
    for answer, remaining in zip(answers, ["1", "0", "0"], strict=True):
        assert (answer.headers[limit_name], answer.headers[remaining_name]) == ("2", remaining)
        missing = [name for name in sent if name not in answer.headers]
        assert missing == (resets if answer.status == 200 else [])
        assert [name for name in absent if name in answer.headers] == []
    refused = answers[2].headers
    reset = int(refused[reset_name])
    assert (reset % 60, round(reset - (time.time() + skew))) == (0, 40)
    assert refused["Retry-After"] == "40"
    assert [("Retry-After" in answer.headers) for answer in answers] == [False, False, True]
    assert (server.stats.rejected_over_limit, set(server.stats.applied)) == (1, {"u0", "u1"})


async def test_reset_on_every_answer_is_a_flag(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """With reset_on_every_answer the reset comes on every answer, as the fake's old default did."""
    skew = skew_for(60, 20.0)
    _, base = await start(all_exist=True, limit=5, reset_on_every_answer=True, clock_skew=skew)
    answer = await call(session, "DELETE", f"{base}/users/x")
    reset = int(answer.headers["X-Rate-Limit-Reset"])
    assert (answer.status, answer.headers["X-RateLimit-Reset"], reset % 60) == (200, str(reset), 0)
    assert "Retry-After" not in answer.headers


async def test_date_header_comes_from_the_server_clock(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """Every answer has a Date header, read from the server's (here skewed) clock."""
    _, base = await start(users=frozenset({"x"}), clock_skew=3600.0)
    answer = await call(session, "GET", f"{base}/users/nobody")
    date = email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert answer.status == 404
    assert 3598 <= date - time.time() <= 3601


async def test_unlimited_sends_no_limit_headers(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """With no limit configured, no rate-limit header is sent."""
    _, base = await start(all_exist=True)
    answer = await call(session, "DELETE", f"{base}/users/x")
    assert [name for name in OLD + NEW if name in answer.headers] == []


async def test_windows_follow_the_server_clock(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """Bad keys count against the window too; a new window opens on the clock, not a request."""
    # 0.3 s into a 0.5 s window: the window ends 0.2 s after the first request, not 0.5 s.
    _, base = await start(
        users=frozenset({"x"}), limit=1, window=0.5, clock_skew=skew_for(0.5, 0.3)
    )
    refused = await call(session, "GET", f"{base}/users/x", key="wrong")
    limited = await call(session, "GET", f"{base}/users/x")
    await asyncio.sleep(0.25)
    admitted = await call(session, "GET", f"{base}/users/x")
    assert [refused.status, limited.status, admitted.status] == [404, 429, 200]
    assert (limited.headers["Retry-After"], admitted.headers["X-RateLimit-Remaining"]) == ("1", "0")


async def test_windows_can_start_at_the_first_request(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """With window_from_first_request the first window runs its full length from that request."""
    # The same phase as above: a clock-aligned window would end after 0.2 s.
    _, base = await start(
        all_exist=True,
        limit=1,
        window=0.5,
        window_from_first_request=True,
        clock_skew=skew_for(0.5, 0.3),
    )
    first = await call(session, "DELETE", f"{base}/users/a")
    await asyncio.sleep(0.3)
    still_spent = await call(session, "DELETE", f"{base}/users/b")
    await asyncio.sleep(0.25)
    next_window = await call(session, "DELETE", f"{base}/users/c")
    assert [first.status, still_spent.status, next_window.status] == [200, 429, 200]


async def test_live_traffic_is_refused_once_the_window_is_spent(start: Start) -> None:
    """Live traffic at twice the window's budget is refused past the limit, in every window."""
    began = time.monotonic()
    server, _ = await start(limit=10, window=0.5, live_rate=40, clock_skew=skew_for(0.5, 0.0))
    await asyncio.sleep(1.25)
    stats = server.stats
    windows = math.ceil((time.monotonic() - began) / 0.5)
    admitted = sum(row["live_ok"] for row in stats.timeline.values())
    refused = sum(row["live_refused"] for row in stats.timeline.values())
    assert (admitted + refused, refused) == (stats.live_sent, stats.live_refused)
    assert stats.live_sent >= 45
    assert 20 < admitted <= 10 * windows
    assert stats.requests == 0


async def test_live_traffic_lowers_the_remaining_budget(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """Clients see live traffic in the remaining budget, and 429 once it has spent the window."""
    server, base = await start(
        all_exist=True, limit=20, window=60, live_rate=100, clock_skew=skew_for(60, 10.0)
    )
    await asyncio.sleep(0.1)
    first = await call(session, "DELETE", f"{base}/users/a")
    assert first.status == 200
    assert int(first.headers["X-Rate-Limit-Remaining"]) < 19
    await asyncio.sleep(0.25)
    late = await call(session, "DELETE", f"{base}/users/b")
    assert (late.status, late.headers["X-RateLimit-Remaining"]) == (429, "0")
    assert server.stats.live_refused > 0
    seconds = server.stats.timeline
    assert sum(row["our_ok"] for row in seconds.values()) == 1
    assert sum(row["our_429"] for row in seconds.values()) == 1


async def test_live_traffic_is_never_refused_without_a_limit(start: Start) -> None:
    """With no limit every live request is admitted."""
    server, _ = await start(live_rate=200)
    await asyncio.sleep(0.2)
    assert server.stats.live_sent >= 20
    assert server.stats.live_refused == 0


@pytest.mark.parametrize(
    ("second", "rate"), [(0.0, 10.0), (14.9, 10.0), (15.0, 30.0), (19.9, 30.0), (20.0, 10.0)]
)
def test_live_bursts_come_at_the_end_of_each_period(second: float, rate: float) -> None:
    """10/s, three times that for the last 5 s of every 20 s of the server clock."""
    config = FakeConfig(
        live_rate=10, live_burst_factor=3, live_burst_seconds=5, live_burst_every=20
    )
    assert config.live_rate_at(1_700_000_000 + second) == pytest.approx(rate)


async def test_live_bursts_raise_the_live_traffic(start: Start) -> None:
    """Bursts at 5x for half of every 0.4 s triple the live requests of a steady 50/s."""
    steady, _ = await start(live_rate=50)
    bursty, _ = await start(
        live_rate=50, live_burst_factor=5, live_burst_seconds=0.2, live_burst_every=0.4
    )
    await asyncio.sleep(0.8)
    # Expected over 0.8 s: 40 steady, 120 bursty (a mean of 150/s).
    assert 25 <= steady.stats.live_sent <= 55
    assert 90 <= bursty.stats.live_sent <= 150


async def test_live_traffic_stops_with_the_server(start: Start) -> None:
    """Stopping the server stops its live traffic."""
    server, _ = await start(live_rate=200)
    await asyncio.sleep(0.05)
    await server.stop()
    sent = server.stats.live_sent
    await asyncio.sleep(0.05)
    assert server.stats.live_sent == sent


async def test_timeline_counts_our_requests_per_second(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """The timeline splits our requests by second into admitted and refused by the window."""
    server, base = await start(all_exist=True, limit=2, window=1, clock_skew=skew_for(1, 0.1))
    for n in range(3):
        await call(session, "DELETE", f"{base}/users/u{n}")
    await asyncio.sleep(1.05)
    await call(session, "DELETE", f"{base}/users/u9")
    assert server.stats.timeline == {
        0: {"our_ok": 2, "our_429": 1, "live_ok": 0, "live_refused": 0},
        1: {"our_ok": 1, "our_429": 0, "live_ok": 0, "live_refused": 0},
    }


async def test_reset_fault_sends_no_answer(session: aiohttp.ClientSession, start: Start) -> None:
    """A reset closes the connection unanswered and applies nothing; the client resends once."""
    server, base = await start(users=frozenset({"x"}), reset_rate=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, "DELETE", f"{base}/users/x")
    stats = server.stats
    assert (stats.deletes_by_uid, stats.faults["reset"], stats.applied) == ({"x": 2}, 2, {})
    assert stats.status_counts == {}


async def test_drop_fault_applies_then_sends_no_answer(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A drop applies the delete, then closes the connection; the client's resend is dropped too."""
    server, base = await start(users=frozenset({"x"}), drop_rate=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, "DELETE", f"{base}/users/x", body='{"permanent": true}')
    stats = server.stats
    assert (stats.deletes_by_uid, stats.faults["drop"], stats.applied) == (
        {"x": 2},
        2,
        {"x": "removed"},
    )
    assert stats.status_counts == {}


async def test_fail_fault_answers_5xx_without_applying(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A fail answers 500 ERR_MISSION_FAILED, 502 HTML or 503 ERR_SERVICE_UNAVAILABLE, unapplied."""
    server, base = await start(users=frozenset({"x"}), fail_rate=1.0)
    answers = [await call(session, "DELETE", f"{base}/users/x") for _ in range(12)]
    seen = {
        (a.status, a.code if a.body is not None else a.headers["Content-Type"]) for a in answers
    }
    assert seen == {
        (500, "ERR_MISSION_FAILED"),
        (502, "text/html; charset=utf-8"),
        (503, "ERR_SERVICE_UNAVAILABLE"),
    }
    assert (server.stats.faults["fail"], server.stats.applied) == (12, {})


async def test_throttle_fault_answers_429_with_short_retry_after(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A throttle answers 429 with the configured fractional Retry-After, apart from the window."""
    server, base = await start(users=frozenset({"x"}), throttle_rate=1.0, fault_retry_after=0.05)
    answer = await call(session, "DELETE", f"{base}/users/x")
    assert (answer.status, answer.code, answer.headers["Retry-After"]) == (
        429,
        "ERR_TOO_MANY_REQUESTS",
        "0.05",
    )
    assert (server.stats.faults["throttle"], server.stats.rejected_over_limit) == (1, 0)
    assert server.stats.applied == {}


async def test_slow_fault_applies_and_answers_late(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A slow DELETE is applied and answered only after slow_seconds."""
    server, base = await start(users=frozenset({"x"}), slow_rate=1.0, slow_seconds=0.2)
    began = time.monotonic()
    answer = await call(session, "DELETE", f"{base}/users/x")
    assert (answer.status, server.stats.faults["slow"]) == (200, 1)
    assert time.monotonic() - began >= 0.2


async def test_same_seed_gives_same_faults(session: aiohttp.ClientSession, start: Start) -> None:
    """Two servers with one seed fail the same requests; another seed fails others."""

    async def statuses(seed: int) -> list[int]:
        _, base = await start(all_exist=True, seed=seed, fail_rate=0.3, throttle_rate=0.3)
        return [(await call(session, "DELETE", f"{base}/users/u{n}")).status for n in range(30)]

    first, again, other = await statuses(7), await statuses(7), await statuses(8)
    assert first == again
    assert first != other
    assert {200, 429} <= set(first)


async def test_key_is_revoked_after_n_deletes(session: aiohttp.ClientSession, start: Start) -> None:
    """After revoke_key_after DELETEs every request is refused AUTH_ERR_APIKEY_NOT_FOUND."""
    _, base = await start(all_exist=True, revoke_key_after=2)
    deletes = [await call(session, "DELETE", f"{base}/users/u{n}") for n in range(3)]
    listing = await call(session, "GET", f"{base}/users?perPage=1")
    assert [answer.status for answer in deletes] == [200, 200, 404]
    assert (deletes[2].code, listing.code) == ("AUTH_ERR_APIKEY_NOT_FOUND",) * 2


async def test_the_huge_stream_read_to_its_end_is_one_success_body(
    session: aiohttp.ClientSession,
) -> None:
    """Read whole (here at a small size), the streamed answer is valid JSON saying success."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_huge_answer(request, {}, size=300_000)

    app = web.Application()
    app.router.add_get("/", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with session.get(server.make_url("/")) as response:
            body = await response.read()
    finally:
        await server.close()
    parsed = json.loads(body)
    expected = (True, 4 * 65536)  # whole 64 KiB chunks of padding, as many as fit
    assert expected == (parsed["data"]["success"], len(parsed["data"]["message"]))


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v3/nope"), ("POST", "/v3/users/x"), ("DELETE", "/v3/users/"), ("GET", "/v2/users")],
)
async def test_unknown_routes_are_counted(
    session: aiohttp.ClientSession, start: Start, method: str, path: str
) -> None:
    """Any other path or method answers 404 and counts in unmatched_paths."""
    server, base = await start(all_exist=True)
    answer = await call(session, method, base.removesuffix("/v3") + path)
    assert (answer.status, answer.code, server.stats.unmatched_paths) == (404, "ERR_NOT_FOUND", 1)


async def test_encoded_slash_stays_in_the_uid(session: aiohttp.ClientSession, start: Start) -> None:
    """A percent-encoded slash is part of the UID, not a path separator."""
    server, base = await start(users=frozenset({"x"}))
    answer = await call(session, "DELETE", f"{base}/users/..%2Fapikeys")
    assert (answer.status, answer.code) == (404, "ERR_UID_NOT_FOUND")
    assert (server.stats.deletes_by_uid, server.stats.unmatched_paths) == ({"../apikeys": 1}, 0)


async def test_get_user_and_list_users(session: aiohttp.ClientSession, start: Start) -> None:
    """GET shows active users only; the list pages through them in UID order."""
    _, base = await start(users=frozenset({"c", "a", "b", "d"}))
    await call(session, "DELETE", f"{base}/users/b")
    user = await call(session, "GET", f"{base}/users/A")
    listing = await call(session, "GET", f"{base}/users?perPage=2")
    bad_page = await call(session, "GET", f"{base}/users?perPage=0")
    assert (user.status, user.body["data"]["uid"]) == (200, "a")
    assert [entry["uid"] for entry in listing.body["data"]] == ["a", "c"]
    assert listing.body["meta"]["pagination"]["total"] == 3
    assert (bad_page.status, bad_page.code) == (400, "ERR_BAD_REQUEST")


async def test_stats_endpoint_reports_counters(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """/_fake/stats needs no key, is not counted itself and reports status codes as strings."""
    _, base = await start(users=frozenset({"x"}))
    await call(session, "DELETE", f"{base}/users/x")
    await call(session, "DELETE", f"{base}/users/x")
    stats = await call(session, "GET", base.removesuffix("/v3") + "/_fake/stats", key=None)
    assert stats.body == {
        "requests": 2,
        "deletes_by_uid": {"x": 2},
        "applied": {"x": "deactivated"},
        "permanent_flags": {"x": [False, False]},
        "in_flight": 0,
        "max_in_flight": 1,
        "status_counts": {"200": 1, "404": 1},
        "faults": {"reset": 0, "fail": 0, "throttle": 0, "drop": 0, "slow": 0},
        "rejected_over_limit": 0,
        "unmatched_paths": 0,
        "bad_requests": 0,
        "bulk_calls": 0,
        "bulk_refused": 0,
        "reactivated": 0,
        "live_sent": 0,
        "live_refused": 0,
        "timeline_start": stats.body["timeline_start"],
        "timeline": {"0": {"our_ok": 2, "our_429": 0, "live_ok": 0, "live_refused": 0}},
    }
    assert abs(stats.body["timeline_start"] - time.time()) < 5


async def test_max_in_flight_counts_concurrent_deletes(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """Concurrent DELETEs held by latency are all in flight at once."""
    server, base = await start(all_exist=True, latency=0.2)
    calls = [call(session, "DELETE", f"{base}/users/u{n}") for n in range(8)]
    answers = await asyncio.gather(*calls)
    assert [answer.status for answer in answers] == [200] * 8
    assert (server.stats.max_in_flight, server.stats.in_flight) == (8, 0)


async def test_serve_reports_its_url_and_stops_when_cancelled(
    session: aiohttp.ClientSession,
) -> None:
    """serve() calls ready with the base URL, answers, and shuts down on cancellation."""
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        serve(FakeConfig(), host="127.0.0.1", port=0, ready=ready.put_nowait)
    )
    base = await ready.get()
    answer = await call(session, "GET", f"{base}/users?perPage=1")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (answer.status, answer.body["data"]) == (200, [])
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, "GET", f"{base}/users?perPage=1")


async def test_stop_cuts_a_slow_delete_short(session: aiohttp.ClientSession) -> None:
    """stop() does not wait out a slow fault: the handler is cancelled after a short grace."""
    server = FakeServer(FakeConfig(all_exist=True, slow_rate=1.0, slow_seconds=30))
    base = await server.start()
    pending = asyncio.create_task(call(session, "DELETE", f"{base}/users/x"))
    async with asyncio.timeout(2):
        # The fake has no event for a handler's entry; its in-flight counter is what shows it.
        while server.stats.in_flight == 0:  # noqa: ASYNC110 - see above
            await asyncio.sleep(0.005)
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending
    assert (server.stats.in_flight, server.stats.applied) == (0, {"x": "deactivated"})


def test_load_users_reads_lines_with_bom_and_crlf(tmp_path: Path) -> None:
    """A plain list is read line by line, past a BOM, CRLFs and blank lines, lowercased."""
    path = tmp_path / "users.txt"
    path.write_bytes(b"\xef\xbb\xbfAlice\r\n\r\n bob \r\ncarol")
    assert load_users(path) == frozenset({"alice", "bob", "carol"})


def test_load_users_reads_the_uid_column_of_a_csv(tmp_path: Path) -> None:
    """A CSV is read from its uid column, found in any case and position."""
    path = tmp_path / "users.csv"
    path.write_bytes(b'\xef\xbb\xbfname,UID\r\nAlice A,Alice\r\n\r\n"B, b",BOB\r\nno uid\r\n')
    assert load_users(path) == frozenset({"alice", "bob"})


@pytest.mark.parametrize(
    "settings",
    [
        {"fail_rate": 1.5},
        {"window": 0},
        {"limit": 0},
        {"api_key": ""},
        {"bad_key_status": 200},
        {"live_rate": -1.0},
        {"success_body": "maybe"},
        {"redirect_to": "ftp://elsewhere.test/"},
        {"portal": True, "redirect_to": "https://elsewhere.test/"},
        {"live_burst_factor": -2.0},
        {"live_burst_seconds": 6.0, "live_burst_every": 5.0},
        {"clock_skew": math.inf},
    ],
)
def test_config_rejects_impossible_values(settings: dict[str, Any]) -> None:
    """A setting the server cannot honour is a ValueError."""
    with pytest.raises(ValueError, match=next(iter(settings))):
        FakeConfig(**settings)


@pytest.mark.parametrize(("seconds", "text"), [(1.0, "1"), (0.05, "0.05"), (2.5, "2.5")])
def test_retry_after_text(seconds: float, text: str) -> None:
    """Retry-After is whole seconds when whole, a short decimal otherwise."""
    assert retry_after_text(seconds) == text


# --- in front of the API: answers that prove nothing, portals, redirects, quoted keys ------------


async def raw(
    session: aiohttp.ClientSession, method: str, url: str, *, body: str = '{"permanent": false}'
) -> tuple[int, str, bytes]:
    """Send one request with the key; return status, content type and the raw body."""
    headers = {"apikey": KEY, "content-type": "application/json"}
    async with session.request(method, url, headers=headers, data=body, allow_redirects=False) as r:
        return r.status, r.content_type, await r.read()


@pytest.mark.parametrize(
    ("kind", "content_type", "body"),
    [
        ("deactivated-uids", "application/json", b'{"data": {"deactivatedUids": ["ann"]}}'),
        ("html", "text/html", b"<html><body><h1>OK</h1></body></html>"),
        ("empty", "application/json", b""),
        (
            "success-false",
            "application/json",
            b'{"data": {"success": false, "message": "Failed to delete the user."}}',
        ),
        ("invalid-json", "application/json", b'{"data": {"success": tr'),
        (
            "error-200",
            "application/json",
            b'{"error": {"code": "ERR_UID_NOT_FOUND", "message": "The UID ann does not exist.", '
            b'"devMessage": "The UID ann does not exist.", "source": "fake-cometchat", '
            b'"details": {}}}',
        ),
    ],
)
async def test_success_body_chooses_what_an_applied_delete_gets(
    session: aiohttp.ClientSession, start: Start, kind: str, content_type: str, body: bytes
) -> None:
    """Each success_body kind answers 200 with its body, and the DELETE is applied."""
    server, base = await start(users=frozenset({"ann"}), success_body=kind)
    got = await raw(session, "DELETE", f"{base}/users/ANN")
    expected = (200, content_type, body, {"ann": "deactivated"})
    assert expected == (*got, server.stats.applied)


async def test_deactivated_uids_is_for_soft_deletes_only(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A permanent DELETE gets the documented success body whatever success_body says."""
    _, base = await start(users=frozenset({"ann"}), success_body="deactivated-uids")
    status, _, body = await raw(session, "DELETE", f"{base}/users/ann", body='{"permanent": true}')
    assert (status, body.startswith(b'{"data": {"success": true')) == (200, True)


async def test_huge_streams_its_body_in_chunks(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """The huge answer has no length and starts as a success body; reading a little is enough."""
    server, base = await start(users=frozenset({"ann"}), success_body="huge")
    headers = {"apikey": KEY, "content-type": "application/json"}
    async with session.delete(f"{base}/users/ann", headers=headers, data="{}") as response:
        first = await response.content.read(64)
        expected = (200, None, "chunked", b'{"data": {"success": true, "message": "xxxxx')
        assert expected == (
            response.status,
            response.content_length,
            response.headers.get("Transfer-Encoding"),
            first[: len(expected[3])],
        )
        response.close()
    assert server.stats.applied == {"ann": "deactivated"}
    assert server.stats.status_counts == {200: 1}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users?perPage=1"), ("DELETE", "/users/ann"), ("GET", "/elsewhere")],
)
async def test_portal_answers_every_request_with_html(
    session: aiohttp.ClientSession, start: Start, method: str, path: str
) -> None:
    """A captive portal answers 200 HTML to anything and nothing reaches the API."""
    server, base = await start(users=frozenset({"ann"}), portal=True)
    got = await raw(session, method, base + path)
    expected: tuple[object, ...] = (200, "text/html", PORTAL_PAGE.encode(), {}, {}, 1)
    assert expected == (
        *got,
        server.stats.applied,
        server.stats.deletes_by_uid,
        server.stats.requests,
    )


async def test_redirect_to_answers_307_to_the_same_path_elsewhere(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """A redirecting proxy sends every request on, path and query kept; the stats still answer."""
    server, base = await start(users=frozenset({"ann"}), redirect_to="https://elsewhere.test/")
    async with session.get(f"{base}/users?perPage=1", allow_redirects=False) as response:
        location = response.headers.get("Location")
        status = response.status
    async with session.get(base.removesuffix("/v3") + "/_fake/stats") as stats_response:
        stats = await stats_response.json()
    expected: tuple[object, ...] = (307, "https://elsewhere.test/v3/users?perPage=1", {}, 1)
    assert expected == (status, location, server.stats.applied, stats["requests"])


async def test_quote_key_writes_the_key_sent_into_the_bad_key_message(
    session: aiohttp.ClientSession, start: Start
) -> None:
    """As public mock servers word it: "The key <apikey> does not exist for this app."."""
    _, base = await start(users=frozenset({"x"}), quote_key=True)
    answer = await call(session, "DELETE", f"{base}/users/x", key="wrong-key-123")
    expected = (
        404,
        "AUTH_ERR_APIKEY_NOT_FOUND",
        "The key wrong-key-123 does not exist for this app.",
    )
    assert expected == (answer.status, answer.code, answer.body["error"]["message"])
