"""Read-back: ask the API for each deleted user and record whether it still answers.

``bulkdelete check AUDIT`` (and ``delete --verify-deleted``) sends one paced, retried
``GET /users/{uid}`` per UID the audit records as deleted (or already deactivated), and appends
a ``read_back`` line for each to the same audit, between ``check_started`` and
``check_finished`` lines. CometChat
answers ``ERR_UID_NOT_FOUND`` both for a removed user and for a deactivated one, so ``gone``
proves the API no longer returns the user, not that it was erased.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from bulkdelete._version import __version__
from bulkdelete.api import Client, open_session
from bulkdelete.audit import AuditWriter, read_records
from bulkdelete.clock import SYSTEM_CLOCK, Clock
from bulkdelete.outcome import Outcome, ReadBack, Verdict, classify, read_back_result
from bulkdelete.records import CheckFinished, CheckStarted, ReadBackResult, RowOutcome, run_settings
from bulkdelete.retry import call_with_retries, pacer_and_policy
from bulkdelete.settings import Settings
from bulkdelete.summary import CheckSummary

_MAX_LISTED = 1000  # UIDs still present are listed in the summary up to this many


# What a read-back asks about: users the audit says the API should no longer return.
_GONE: Final = frozenset({Outcome.DELETED, Outcome.ALREADY_DEACTIVATED})


def deleted_uids(audit: Path, *, run_id: str | None = None) -> Iterator[str]:
    """Yield the UIDs an audit records as deleted or already deactivated (only those of
    ``run_id``, if given): the API answers not found for both."""
    for _number, record in read_records(audit):
        if (
            isinstance(record, RowOutcome)
            and record.outcome in _GONE
            and record.normalised_uid is not None
            and (run_id is None or record.run_id == run_id)
        ):
            yield record.normalised_uid


async def read_back(
    settings: Settings,
    uids: Iterable[str],
    *,
    check_id: str,
    stop: asyncio.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> CheckSummary:
    """Read every UID back through the API and append what was found to the settings' audit.

    The pacer and the retry policy are a delete run's (``retry.pacer_and_policy``), on ``clock``.
    """
    pacer, policy = pacer_and_policy(settings, clock)
    counts: Counter[ReadBack] = Counter()
    present: list[str] = []
    fatal: list[str] = []
    requests = 0
    started = clock.monotonic()
    pending = iter(uids)  # shared by the workers: each UID is taken once
    chain_key = settings.audit_key.reveal().encode() if settings.audit_key else None

    async with (
        open_session(settings) as session,
        AuditWriter(settings.audit_path, chain_key=chain_key) as audit,
    ):
        client = Client(session, base_url=settings.base_url, api_key=settings.api_key.reveal())
        audit.write(
            CheckStarted(run_id=check_id, version=__version__, settings=run_settings(settings))
        )

        async def worker() -> None:
            nonlocal requests
            for uid in pending:
                if pacer.halted:
                    return
                attempted = await call_with_retries(
                    functools.partial(client.get_user, uid), policy=policy, pacer=pacer
                )
                if attempted is None:
                    return
                requests += attempted.attempts
                answer = attempted.answer
                if classify(answer) is Verdict.FATAL:
                    fatal.append(answer.error_code or f"HTTP {answer.http_status}")
                    pacer.halt()
                    return
                result = read_back_result(answer)
                counts[result] += 1
                if result is ReadBack.PRESENT and len(present) < _MAX_LISTED:
                    present.append(uid)
                audit.write(
                    ReadBackResult(
                        run_id=check_id,
                        normalised_uid=uid,
                        result=result,
                        http_status=answer.http_status,
                        error_code=answer.error_code,
                        attempts=attempted.attempts,
                    )
                )

        async def watch_stop() -> None:
            if stop is not None:
                await stop.wait()
                pacer.halt()

        watcher = asyncio.create_task(watch_stop())
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(settings.concurrency):
                    group.create_task(worker())
        finally:
            watcher.cancel()
        unchecked = sum(1 for _ in pending)
        summary = CheckSummary(
            check_id=check_id,
            counts=dict(counts),
            requests=requests,
            duration=clock.monotonic() - started,
            present=tuple(present),
            unchecked=unchecked,
            fatal_code=fatal[0] if fatal else None,
        )
        audit.write(
            CheckFinished(
                run_id=check_id,
                totals={result.value: counts.get(result, 0) for result in ReadBack},
                unchecked=unchecked,
                requests=requests,
                duration_seconds=round(summary.duration, 3),
                fatal_code=summary.fatal_code,
            )
        )
    # Closed: every line is written, and the head is the one a reviewer writes down now.
    return dataclasses.replace(summary, head=audit.head, audit_lines=audit.lines)
