"""The bulk calls of ``api.Client`` against the fake over loopback, read by ``outcome.listed``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bulkdelete.api import BULK_FRAME, MAX_BULK_BODY, Client, bulk_cost
from bulkdelete.fake import FakeConfig, FakeServer
from bulkdelete.outcome import Call, Listed, Verdict, classify, listed

KEY = "fake-api-key"


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:
        servers: list[FakeServer] = []

        async def _serve(**settings: Any) -> tuple[FakeServer, Client]:
            server = FakeServer(FakeConfig(**settings))
            servers.append(server)
            await server.start()
            return server, Client(session, base_url=server.base_url, api_key=KEY)

        yield _serve
        for server in servers:
            await server.stop()


async def test_deactivate_users_reads_every_list(serve: Any) -> None:
    """One DELETE /users: each UID is read from the list that names it, compared lowercased."""
    server, client = await serve(users=frozenset({"ann"}), deactivated=frozenset({"bo"}))
    uids = ["ann", "bo", "cy"]
    answer = await client.deactivate_users(uids)
    expected = (Verdict.DELETED, [Listed.DEACTIVATED, Listed.ALREADY, Listed.ABSENT])
    assert (classify(answer), listed(answer, uids)) == expected
    assert (answer.call, server.stats.bulk_calls, server.stats.applied) == (
        Call.BULK_DEACTIVATE,
        1,
        {"ann": "deactivated"},
    )


async def test_reactivate_users_reads_every_list(serve: Any) -> None:
    """One PUT /users: reactivated, not deactivated (active) and not found."""
    _, client = await serve(users=frozenset({"ann"}), deactivated=frozenset({"bo"}))
    uids = ["bo", "ann", "cy"]
    answer = await client.reactivate_users(uids)
    expected = [Listed.REACTIVATED, Listed.ACTIVE, Listed.ABSENT]
    assert (classify(answer), listed(answer, uids)) == (Verdict.DELETED, expected)


async def test_a_refused_batch_keeps_its_code(serve: Any) -> None:
    """Over the fake's largest batch: 400 ERR_BAD_REQUEST, a failure a split may isolate."""
    _, client = await serve(all_exist=True, max_batch=2)
    answer = await client.deactivate_users(["a", "b", "c"])
    expected = (400, "ERR_BAD_REQUEST", Verdict.FAIL)
    assert (answer.http_status, answer.error_code, classify(answer)) == expected


async def test_a_bulk_200_that_proves_nothing_is_retried(serve: Any) -> None:
    """An HTML 200 to a bulk call confirms nothing: it may have applied, so it is retried."""
    _, client = await serve(all_exist=True, success_body="html")
    answer = await client.deactivate_users(["a"])
    assert (answer.http_status, classify(answer), listed(answer, ["a"])) == (
        200,
        Verdict.RETRY,
        [Listed.MISSING],
    )


def test_bulk_cost_counts_each_uid_as_written() -> None:
    """A body of UIDs costs the frame and each UID's cost; no more than the bytes sent."""
    uids = [f"user-{n}" for n in range(37)]
    sent = len(orjson.dumps({"uidsToDeactivate": uids}))
    assert BULK_FRAME + sum(bulk_cost(uid) for uid in uids) - 1 == sent
    assert MAX_BULK_BODY == 10 * 1024
