"""The contenders bulkdelete is compared with in ``bench/pacing.py`` scenario 7.

    python bench/_loops.py aiohttp BASE_URL UID_FILE CONCURRENCY
    python bench/_loops.py floor BASE_URL UID_FILE CONCURRENCY AUDIT
    python bench/_loops.py requests BASE_URL UID_FILE

``aiohttp``: CONCURRENCY tasks sharing one ``ClientSession`` (connector sized to CONCURRENCY, as
bulkdelete sizes its own), each doing ``session.delete`` and reading the answer, UID after UID:
the fastest a Python client can go without pacing, retries or an audit. ``floor``: the same
loop plus only the work a tool that proves each deletion cannot skip, done with bulkdelete's own
parts: each UID validated and checked for duplicates, a hash-chained ``sending`` line handed to
the kernel before its request leaves, and a hash-chained outcome line after the answer. No
pacing, retries, answer parsing or run bookkeeping: what bulkdelete could reach at best while
keeping its audit. ``requests``: one ``requests.Session().delete`` after another, as public
CometChat clean-up scripts do. All three send what bulkdelete sends: the same URL (UID
percent-encoded as one segment), headers and body. The key is env ``COMETCHAT_API_KEY``. One
JSON line on stdout: requests sent, seconds, answers by status.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import aiohttp
import requests

from bulkdelete.audit import AuditWriter
from bulkdelete.records import timestamp
from bulkdelete.rows import make_row
from bulkdelete.uidset import UidSet

BODY = b'{"permanent":false}'


def _headers() -> dict[str, str]:
    return {
        "accept": "application/json",
        "content-type": "application/json",
        "apikey": os.environ["COMETCHAT_API_KEY"],
    }


def _url(base: str, uid: str) -> str:
    return f"{base.rstrip('/')}/users/{quote(uid, safe='')}"


async def aiohttp_loop(base: str, uids: list[str], concurrency: int) -> Counter[int]:
    """Delete ``uids`` with ``concurrency`` tasks; return the answers by status."""
    statuses: Counter[int] = Counter()
    headers = _headers()
    pending = iter(uids)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for uid in pending:  # one shared iterator: each UID goes to one task
                async with session.delete(_url(base, uid), data=BODY, headers=headers) as answer:
                    await answer.read()
                    statuses[answer.status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def floor_loop(
    base: str, uids: list[str], concurrency: int, audit_path: Path
) -> Counter[int]:
    """``aiohttp_loop`` plus validation and the two audit lines per UID; answers by status."""
    statuses: Counter[int] = Counter()
    headers = _headers()
    seen = UidSet()
    rows = (make_row(f"input:{n}", uid, seen) for n, uid in enumerate(uids, start=1))
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with (
        AuditWriter(audit_path) as audit,
        aiohttp.ClientSession(connector=connector) as session,
    ):

        async def worker() -> None:
            for row in rows:  # one shared generator: each row goes to one task
                uid = row.uid
                if uid is None or row.duplicate:
                    continue
                audit.write_through(
                    {"ts": timestamp(), "event": "sending", "uid": uid, "source": row.source}
                )
                async with session.delete(_url(base, uid), data=BODY, headers=headers) as answer:
                    await answer.read()
                    statuses[answer.status] += 1
                audit.write(
                    {
                        "ts": timestamp(),
                        "uid": row.raw,
                        "status": answer.status,
                        "source": row.source,
                    }
                )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def requests_loop(base: str, uids: list[str]) -> Counter[int]:
    """Delete ``uids`` one after another; return the answers by status."""
    statuses: Counter[int] = Counter()
    headers = _headers()
    with requests.Session() as session:
        for uid in uids:
            answer = session.delete(_url(base, uid), data=BODY, headers=headers, timeout=30)
            statuses[answer.status_code] += 1
    return statuses


def main(argv: list[str]) -> None:
    kind, base, uid_file = argv[:3]
    uids = Path(uid_file).read_text(encoding="utf-8").split()
    began = time.perf_counter()
    if kind == "aiohttp":
        statuses = asyncio.run(aiohttp_loop(base, uids, int(argv[3])))
    elif kind == "floor":
        statuses = asyncio.run(floor_loop(base, uids, int(argv[3]), Path(argv[4])))
    elif kind == "requests":
        statuses = requests_loop(base, uids)
    else:
        raise SystemExit(f"unknown loop {kind!r}: aiohttp, floor or requests")
    seconds = time.perf_counter() - began
    sent = sum(statuses.values())
    print(json.dumps({"sent": sent, "seconds": seconds, "statuses": dict(statuses)}))


if __name__ == "__main__":
    main(sys.argv[1:])
