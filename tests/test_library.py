"""The library API: ``delete_users`` runs the CLI's pipeline from plain Python."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import API_KEY, FakeFactory, audit_lines, cli_env, row_records

from bulkdelete import Outcome, RunStatus, Secret, Settings, delete_users
from bulkdelete.fake import FakeConfig, FakeServer
from bulkdelete.rows import Row, make_row
from bulkdelete.run import run_delete
from bulkdelete.uidset import UidSet


async def test_async_iterable_of_uids(tmp_path: Path) -> None:
    """An async generator of UIDs is validated, deduplicated, deleted and audited."""
    config = FakeConfig(api_key=API_KEY, users=frozenset({"ann", "bob"}))

    async def uids() -> AsyncIterator[str]:
        for uid in ["Ann", "bob", "ANN", "../x", "carl"]:
            yield uid

    async with FakeServer(config) as server:
        settings = Settings(
            base_url=server.base_url, api_key=Secret(API_KEY), audit_path=tmp_path / "a.jsonl"
        )
        summary = await delete_users(uids(), settings)
        sent = dict(server.stats.deletes_by_uid)

    assert summary.status is RunStatus.COMPLETED
    assert dict(summary.counts) == {
        Outcome.DELETED: 2,
        Outcome.NOT_FOUND: 1,
        Outcome.DUPLICATE: 1,
        Outcome.INVALID: 1,
    }
    assert sent == {"ann": 1, "bob": 1, "carl": 1}
    sources = {r["uid"]: r["source"] for r in row_records(tmp_path / "a.jsonl")}
    assert sources == {"Ann": "uids:1", "bob": "uids:2", "ANN": "uids:3", "../x": "uids:4",
                       "carl": "uids:5"}  # fmt: skip


def test_plain_script(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A plain Python script using asyncio.run(delete_users(...)) deletes the users it names."""
    server = fake_server(users=["u1", "u2", "u3"])
    script = tmp_path / "erase.py"
    script.write_text(
        textwrap.dedent(f"""
            import asyncio, os
            from pathlib import Path
            from bulkdelete import Secret, Settings, delete_users

            settings = Settings(
                base_url={server.base_url!r},
                api_key=Secret(os.environ["COMETCHAT_API_KEY"]),
                audit_path=Path({str(tmp_path / "audit.jsonl")!r}),
                permanent=True,
            )
            summary = asyncio.run(delete_users(["u1", "u2", "u3"], settings))
            print(summary.all_final, sum(summary.counts.values()))
        """),
        encoding="utf-8",
    )

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=cli_env(), timeout=60,
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "3"]
    assert server.stats()["permanent_flags"] == {"u1": [True], "u2": [True], "u3": [True]}


async def test_requests_cut_off_by_the_stop_grace_are_counted_unanswered(tmp_path: Path) -> None:
    """When the stop grace ends mid-request, the summary and run_finished count those UIDs."""
    uids = [f"user-{n}" for n in range(20)]
    config = FakeConfig(api_key=API_KEY, users=frozenset(uids), latency=1.0)
    audit = tmp_path / "a.jsonl"
    stop = asyncio.Event()
    async with FakeServer(config) as server:
        settings = Settings(
            base_url=server.base_url,
            api_key=Secret(API_KEY),
            audit_path=audit,
            concurrency=4,
            batch_size=1,
        )
        rows = [make_row(f"uids:{n}", uid, UidSet()) for n, uid in enumerate(uids, start=1)]
        # The credential check takes 1 s, then four DELETEs wait 1 s for their answers.
        asyncio.get_running_loop().call_later(1.4, stop.set)
        summary = await run_delete(settings, rows, stop=stop, stop_grace=0.1)

    records = audit_lines(audit)
    sent = {r["normalised_uid"] for r in records if r.get("event") == "sending"}
    answered = {r["normalised_uid"] for r in records if "outcome" in r}
    assert summary.status is RunStatus.INTERRUPTED
    assert summary.unanswered == len(sent - answered) == 4
    assert records[-1]["unanswered"] == 4


async def test_a_batch_cut_off_by_the_stop_grace_is_counted_unanswered(tmp_path: Path) -> None:
    """A batch of 20 waiting for its answer when the grace ends: all 20 are unanswered, in the
    summary and in run_finished, and its batch_sending line names them."""
    uids = [f"user-{n}" for n in range(20)]
    config = FakeConfig(api_key=API_KEY, users=frozenset(uids), latency=1.0)
    audit = tmp_path / "a.jsonl"
    stop = asyncio.Event()
    async with FakeServer(config) as server:
        settings = Settings(base_url=server.base_url, api_key=Secret(API_KEY), audit_path=audit)
        rows = [make_row(f"uids:{n}", uid, UidSet()) for n, uid in enumerate(uids, start=1)]
        asyncio.get_running_loop().call_later(1.4, stop.set)  # the check takes 1 s, then the call
        summary = await run_delete(settings, rows, stop=stop, stop_grace=0.1)

    records = audit_lines(audit)
    [intent] = [r for r in records if r.get("event") == "batch_sending"]
    assert summary.status is RunStatus.INTERRUPTED
    assert summary.unanswered == len(intent["normalised_uids"]) == 20
    assert (records[-1]["unanswered"], any("outcome" in r for r in records)) == (20, False)


async def test_a_run_that_crashes_is_not_recorded_as_completed(tmp_path: Path) -> None:
    """An unexpected error mid-run leaves no run_finished: the audit reads it as cut short."""
    uids = [f"user-{n}" for n in range(10)]
    config = FakeConfig(api_key=API_KEY, users=frozenset(uids))
    audit = tmp_path / "a.jsonl"

    def rows() -> Iterator[Row]:
        seen = UidSet()
        for n, uid in enumerate(uids, start=1):
            if n == 6:
                raise RuntimeError("the input source broke")
            yield make_row(f"uids:{n}", uid, seen)

    async with FakeServer(config) as server:
        settings = Settings(base_url=server.base_url, api_key=Secret(API_KEY), audit_path=audit)
        with pytest.raises(ExceptionGroup) as raised:
            await run_delete(settings, rows())
        assert "the input source broke" in str(raised.value.exceptions[0])

    events = [r.get("event") for r in audit_lines(audit)]
    assert events[0] == "run_started"
    assert "run_finished" not in events
