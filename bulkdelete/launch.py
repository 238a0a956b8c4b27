"""Run the CLI's asyncio programs (a delete run, a read-back) under SIGINT/SIGTERM handling.

Kept apart from ``cli`` so that commands which send nothing (``--dry-run``, ``report``,
``verify``) never import aiohttp: a dry run over a million rows must stay small. The first
SIGINT/SIGTERM asks the program to stop gracefully; a second cancels it at once.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bulkdelete.columns import Columns
from bulkdelete.progress import Reporter
from bulkdelete.readback import deleted_uids, read_back
from bulkdelete.records import Input, InputFile, InputStream, Manifest, Operator
from bulkdelete.resume import Resume, check_append
from bulkdelete.rows import InputSummary, Source, Stream
from bulkdelete.run import new_run_id, run_delete
from bulkdelete.settings import Settings
from bulkdelete.streaming import Feed
from bulkdelete.summary import CheckSummary, Summary

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Ended(Generic[_T]):
    """How a program ended: its result (None when a second signal cancelled it), and the
    first signal received, if any."""

    result: _T | None
    signum: int | None


def _run_program(program: Callable[[asyncio.Event], Awaitable[_T]]) -> Ended[_T]:
    received: list[int] = []

    async def main() -> _T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal(signum: int) -> None:
            received.append(signum)
            if stop.is_set() and task is not None:
                task.cancel()  # the second signal: stop now (the audit is still closed cleanly)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        return await program(stop)

    try:
        result: _T | None = asyncio.run(main())
    except asyncio.CancelledError:
        result = None
    return Ended(result, received[0] if received else None)


def operator() -> Operator:
    """Name who runs this, for the manifest: the login name and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER: a bare container
        user = f"uid {os.getuid()}"
    return Operator(user=user, host=socket.gethostname())


def delete(
    settings: Settings,
    sources: Sequence[Source | Stream],
    scanned: InputSummary,
    *,
    resume: Resume | None,
    reporter: Reporter,
    max_deletes: int | None = None,
) -> Ended[Summary]:
    """Run the delete pipeline over the inputs, recording the manifest of this run.

    ``scanned`` holds what ``scan`` learned of the files among ``sources``, in order; a stream
    is read as it comes, and ``max_deletes`` caps the valid UIDs read (see ``rows``).
    ``resume`` comes from ``resume.plan_run``, which checked the audit this run appends to.
    """
    feed = Feed(sources, Columns(settings.column, settings.no_header))
    streamed = any(isinstance(source, Stream) for source in sources)
    manifest = Manifest(operator=operator(), inputs=manifest_inputs(sources, scanned))
    return _run_program(
        lambda stop: run_delete(
            settings,
            feed.rows(),
            stop=stop,
            run_id=new_run_id(),
            manifest=manifest,
            resume=resume,
            progress=reporter,
            total=None if streamed else scanned.rows,
            max_deletes=max_deletes,
            inputs_read=feed.read_records,
            on_halt=feed.stop_waiting,
        )
    )


def manifest_inputs(sources: Sequence[Source | Stream], scanned: InputSummary) -> tuple[Input, ...]:
    """Describe each input for ``run_started``: a file by its hash, a stream as streamed."""
    files = iter(scanned.files)
    described: list[Input] = []
    for source in sources:
        if isinstance(source, Stream):
            # Its rows, size and hash are known where reading stops: see its input_read line.
            described.append(InputStream(name=source.name, column=source.layout.column))
        else:
            f = next(files)
            described.append(
                InputFile(
                    name=f.name,
                    rows=f.rows,
                    sha256=f.sha256,
                    bytes=f.byte_size,
                    column=f.layout.column,
                )
            )
    return tuple(described)


def check(settings: Settings, uids: Sequence[str]) -> Ended[CheckSummary]:
    """Read the UIDs back, appending what was found to the settings' audit."""
    check_append(settings)
    return _run_program(lambda stop: read_back(settings, uids, check_id=new_run_id(), stop=stop))


def check_audit(settings: Settings, *, run_id: str | None = None) -> Ended[CheckSummary]:
    """Read back the UIDs the settings' audit records as deleted (by ``run_id`` only, if given).

    They are all read before the check starts appending to the same file.
    """
    return check(settings, list(deleted_uids(settings.audit_path, run_id=run_id)))
