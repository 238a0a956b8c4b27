"""The fake's bulk endpoints (``fake/bulk_endpoints.py``), driven over loopback by aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bulkdelete.fake import FakeConfig, FakeServer

KEY = "fake-api-key"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def bulk(
    session: aiohttp.ClientSession,
    server: FakeServer,
    method: str,
    body: Any,
    *,
    key: str = KEY,
) -> tuple[int, Any]:
    """Send one bulk call; return the status and the decoded JSON body (None for other bodies)."""
    headers = {"apikey": key, "content-type": "application/json"}
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    url = f"{server.base_url}/users"
    async with session.request(method, url, headers=headers, data=data) as response:
        json = response.content_type == "application/json"
        return response.status, (await response.json() if json else await response.text())


@pytest.fixture
async def start() -> AsyncIterator[Any]:
    servers: list[FakeServer] = []

    async def _start(**settings: Any) -> FakeServer:
        server = FakeServer(FakeConfig(**settings))
        servers.append(server)
        await server.start()
        return server

    yield _start
    for server in servers:
        await server.stop()


async def test_deactivate_answers_a_list_per_state(
    session: aiohttp.ClientSession, start: Any
) -> None:
    """Active users are deactivated now, deactivated ones listed as such, the rest not found;
    UIDs come back lowercased and once each."""
    server = await start(users=frozenset({"Ann", "bob"}), deactivated=frozenset({"Cy"}))
    uids = ["ANN", "cy", "nobody", "ann", "Bob"]
    got = await bulk(session, server, "DELETE", {"uidsToDeactivate": uids})
    expected = {
        "data": {
            "deactivatedUids": ["ann", "bob"],
            "alreadyDeactivatedUids": ["cy"],
            "notFound": ["nobody"],
        }
    }
    assert got == (200, expected)
    stats = server.stats
    assert stats.applied == {"ann": "deactivated", "bob": "deactivated"}
    assert (stats.bulk_calls, stats.requests, stats.deletes_by_uid["ann"]) == (1, 1, 1)
    assert stats.permanent_flags["bob"] == [False]


async def test_empty_lists_are_left_out(session: aiohttp.ClientSession, start: Any) -> None:
    """A call that finds no user answers 200 with only notFound, as CometChat documents."""
    server = await start(users=frozenset())
    got = await bulk(session, server, "DELETE", {"uidsToDeactivate": ["x", "y"]})
    assert got == (200, {"data": {"notFound": ["x", "y"]}})


async def test_reactivate_answers_a_list_per_state(
    session: aiohttp.ClientSession, start: Any
) -> None:
    """Deactivated users become active again; active ones are nonDeactivatedUids; removed and
    unknown ones notFound."""
    server = await start(users=frozenset({"act", "gone"}), deactivated=frozenset({"off"}))
    headers = {"apikey": KEY, "content-type": "application/json"}
    async with session.delete(
        f"{server.base_url}/users/gone", headers=headers, data='{"permanent": true}'
    ):
        pass
    got = await bulk(session, server, "PUT", {"uidsToActivate": ["OFF", "act", "gone", "nope"]})
    expected = {
        "data": {
            "reactivatedUids": ["off"],
            "notFound": ["gone", "nope"],
            "nonDeactivatedUids": ["act"],
        }
    }
    assert got == (200, expected)
    async with session.get(f"{server.base_url}/users/off", headers=headers) as read:
        assert read.status == 200
    assert (server.stats.reactivated, server.stats.applied["off"]) == (1, "reactivated")


async def test_a_reactivated_user_can_be_deactivated_again(
    session: aiohttp.ClientSession, start: Any
) -> None:
    """Reactivation and deactivation are each other's undoing, as often as asked."""
    server = await start(deactivated=frozenset({"u"}))
    await bulk(session, server, "PUT", {"uidsToActivate": ["u"]})
    got = await bulk(session, server, "DELETE", {"uidsToDeactivate": ["u"]})
    assert got == (200, {"data": {"deactivatedUids": ["u"]}})


@pytest.mark.parametrize(
    ("settings", "body", "status"),
    [
        ({"max_batch": 2}, {"uidsToDeactivate": ["a", "b", "c"]}, 400),
        ({"max_body": 40}, {"uidsToDeactivate": ["a" * 20, "b" * 20]}, 413),
        ({}, {"uidsToDeactivate": []}, 400),
        ({}, {"uidsToDeactivate": "a"}, 400),
        ({}, {"uidsToDeactivate": ["a", 1]}, 400),
        ({}, {"uidsToActivate": ["a"]}, 400),
        ({}, b"not json", 400),
    ],
)
async def test_refused_calls_change_nothing(
    session: aiohttp.ClientSession,
    start: Any,
    settings: dict[str, Any],
    body: Any,
    status: int,
) -> None:
    """Too many UIDs (max_batch), too large a body (max_body) or a malformed one is refused
    with ERR_BAD_REQUEST, and nothing is applied."""
    server = await start(all_exist=True, **settings)
    got_status, got = await bulk(session, server, "DELETE", body)
    assert (got_status, got["error"]["code"]) == (status, "ERR_BAD_REQUEST")
    assert (server.stats.applied, server.stats.bulk_refused) == ({}, 1)


async def test_the_documented_body_limit_holds_about_100_uids(
    session: aiohttp.ClientSession, start: Any
) -> None:
    """By default a body may hold 10 KB, as CometChat documents: 100 UIDs of 90 characters fit
    in one call, 100 of the longest allowed (100 characters) do not."""
    server = await start(all_exist=True)
    fits = await bulk(
        session, server, "DELETE", {"uidsToDeactivate": [f"{n:090}" for n in range(100)]}
    )
    too_long = await bulk(
        session, server, "DELETE", {"uidsToDeactivate": [f"{n:0100}" for n in range(100)]}
    )
    assert (fits[0], too_long[0], len(server.stats.applied)) == (200, 413, 100)


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        ({"fail_rate": 1.0, "seed": 1}, {500, 502, 503}),
        ({"throttle_rate": 1.0}, {429}),
    ],
)
async def test_faults_apply_to_bulk_calls(
    session: aiohttp.ClientSession, start: Any, settings: dict[str, Any], status: set[int]
) -> None:
    """A 5xx or 429 fault answers before anything is applied."""
    server = await start(users=frozenset({"a"}), **settings)
    got_status, _ = await bulk(session, server, "DELETE", {"uidsToDeactivate": ["a"]})
    assert (got_status in status, server.stats.applied) == (True, {})


async def test_a_dropped_bulk_call_is_applied_and_unanswered(
    session: aiohttp.ClientSession, start: Any
) -> None:
    """drop applies the call, then resets the connection: the client gets no answer."""
    server = await start(users=frozenset({"a"}), drop_rate=1.0)
    with pytest.raises(aiohttp.ClientError):
        await bulk(session, server, "DELETE", {"uidsToDeactivate": ["a"]})
    assert server.stats.applied == {"a": "deactivated"}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("deactivated-uids", {"data": {"deactivatedUids": ["a"], "notFound": ["b"]}}),
        ("html", "<html><body><h1>OK</h1></body></html>"),
        ("success-false", {"data": {"success": False, "message": "Failed to delete the user."}}),
    ],
)
async def test_success_body_applies_to_bulk_calls(
    session: aiohttp.ClientSession, start: Any, kind: str, expected: Any
) -> None:
    """The documented kinds answer the lists; the kinds that prove nothing answer what a
    DELETE would, the call applied all the same."""
    server = await start(users=frozenset({"a"}), success_body=kind)
    got = await bulk(session, server, "DELETE", {"uidsToDeactivate": ["a", "b"]})
    assert (got, server.stats.applied) == ((200, expected), {"a": "deactivated"})


async def test_bulk_calls_pass_the_gate(session: aiohttp.ClientSession, start: Any) -> None:
    """A wrong key is refused as on every endpoint, and nothing is applied."""
    server = await start(users=frozenset({"a"}))
    got_status, got = await bulk(session, server, "PUT", {"uidsToActivate": ["a"]}, key="wrong")
    assert (got_status, got["error"]["code"]) == (404, "AUTH_ERR_APIKEY_NOT_FOUND")
    assert (server.stats.bulk_calls, server.stats.applied) == (0, {})
