"""``bulkdelete demo``: a real delete run against a fake CometChat started in-process.

The fake server holds the users listed in ``sample_inputs/fake_server_users.txt`` and misbehaves
a little (a few 5xx answers and 429s, seeded), so the demo shows pacing, retries and the audit
through exactly the code path a real run takes: a deactivation in batches (one bulk call per
10 users here), or with ``permanent`` one erasure per user.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bulkdelete.fake import FakeConfig, FakeServer, load_users
from bulkdelete.launch import manifest_inputs
from bulkdelete.records import Manifest
from bulkdelete.rows import Source, read_rows, scan
from bulkdelete.run import run_delete
from bulkdelete.settings import Secret, Settings
from bulkdelete.summary import Summary

_DEMO_INPUT = "users.csv"
_DEMO_USERS = "fake_server_users.txt"
# Batches smaller than a run's 100, so that the demo's few rows make calls enough to meet a fault.
_DEMO_BATCH = 10


def sample_dir() -> Path:
    """Return ``sample_inputs``: beside the package in a checkout, in the prefix when installed."""
    candidates = (
        Path(__file__).resolve().parent.parent / "sample_inputs",
        Path(sys.prefix) / "share" / "bulkdelete" / "sample_inputs",
    )
    for candidate in candidates:
        if (candidate / _DEMO_INPUT).is_file():
            return candidate
    raise FileNotFoundError("sample_inputs/ is missing from this installation")


async def run_demo(
    *, permanent: bool, audit_path: Path | None, echo: Callable[[str], None]
) -> Summary:
    """Start the fake server, delete the sample users through it, and return the summary."""
    samples = sample_dir()
    key = secrets.token_urlsafe(24)  # a fresh key each time: there is nothing to leak
    config = FakeConfig(
        api_key=key,
        users=load_users(samples / _DEMO_USERS),
        limit=3000,
        window=60.0,
        seed=9,
        fail_rate=0.05,
        throttle_rate=0.02,
        fault_retry_after=0.5,
    )
    audit = audit_path or Path("demo-output") / (
        f"bulkdelete-audit-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
    )
    async with FakeServer(config) as server:
        settings = Settings(
            base_url=server.base_url,
            api_key=Secret(key),
            audit_path=audit,
            permanent=permanent,
            batch_size=_DEMO_BATCH,
            target=f"the demo's fake CometChat at {server.base_url}",
        )
        sources = [Source.file(samples / _DEMO_INPUT)]
        scanned = scan(sources, column=None)
        calls = f"in batches of {settings.batch}" if settings.batch > 1 else "one per call"
        echo(
            f"fake CometChat at {server.base_url} holds {len(config.users or ())} users; "
            f"deleting the {scanned.rows} rows of {sources[0].name} {calls}"
        )
        echo(f"audit: {audit}")
        return await run_delete(
            settings,
            read_rows(sources, column=None),
            manifest=Manifest(inputs=manifest_inputs(sources, scanned)),
        )
