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
from typing import Any, Generic, TypeVar

from bulkdelete.audit import ResumeIndex, load_resume_index, refuse_a_foreign_file
from bulkdelete.columns import Columns
from bulkdelete.errors import UsageError
from bulkdelete.progress import Reporter
from bulkdelete.readback import deleted_uids, read_back
from bulkdelete.rows import InputSummary, Source, Stream
from bulkdelete.run import Resume, new_run_id, pseudonyms_for, run_delete
from bulkdelete.settings import Settings, audit_key_id
from bulkdelete.streaming import Feed
from bulkdelete.summary import CheckSummary, Summary

_T = TypeVar("_T")
_KIND = {True: "permanent erasure", False: "deactivation"}


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


def plan_run(
    settings: Settings,
    scanned: InputSummary,
    *,
    resume: bool,
    restart: bool,
    streams: Sequence[str] = (),
) -> Resume | None:
    """Check the audit a delete run will append to; return what ``--resume`` or ``--restart``
    bring to the run (None for a plain run). ``scanned`` holds the files of this run,
    ``streams`` the names of its streamed inputs.

    A plain run is refused when the audit's last run did not finish: starting over in the same
    audit would resend what that run settled, and the audit would then hold two final outcomes
    for those rows, which ``verify`` fails. ``--resume`` continues that run; ``--restart`` says
    that starting over is meant, and the audit records it for ``verify`` and ``report``.
    """
    if resume and restart:
        raise UsageError("--resume continues the audit's last run, --restart starts over: not both")
    if resume or restart:
        return _continue_plan(settings, scanned, restart=restart, streams=streams)
    if settings.audit_path.is_file():
        refuse_a_foreign_file(settings.audit_path)
        index = load_resume_index(settings.audit_path)
        _check_audit_key(settings, index, "")
        if index.last_run_unfinished:
            how = f"ended {index.last_status}" if index.last_status else "was killed"
            raise UsageError(
                f"the audit's last run {index.last_run} {how}, so this run would send again what "
                "it settled: continue it with --resume, start over with --restart, or write to "
                "another --audit"
            )
    return None


def _continue_plan(
    settings: Settings, scanned: InputSummary, *, restart: bool, streams: Sequence[str]
) -> Resume:
    """Read the audit to continue (or restart) and check it was written by a run like this one.

    A restart is held to the same rules as a resume: the same --permanent choice, target, key
    and input (read as in the manifests), or the audit would no longer verify as one piece of
    evidence.
    """
    flag = "--restart" if restart else "--resume"
    if not settings.audit_path.is_file():
        raise UsageError(f"{flag}: there is no audit at {settings.audit_path}")
    refuse_a_foreign_file(settings.audit_path)
    index = load_resume_index(settings.audit_path)
    if index.runs == 0:
        raise UsageError(f"{flag}: {settings.audit_path} records no bulkdelete run")
    if index.permanent != {settings.permanent}:
        kinds = " and ".join(sorted(_KIND[p] for p in index.permanent))
        raise UsageError(
            f"{flag}: the audit records {kinds}, this run is a {_KIND[settings.permanent]}; "
            "a run in the same audit must make the same --permanent choice"
        )
    if index.base_urls != {settings.base_url}:
        raise UsageError(f"{flag}: the audit's runs went to another target than this one")
    if index.uid_hash != {settings.uid_hash}:
        raise UsageError(f"{flag}: use --audit-uid-hash exactly when the audit's runs did")
    _check_audit_key(settings, index, f"{flag}: ")
    known = index.input_hashes & {f.sha256 for f in scanned.files} or index.streamed & {*streams}
    if (index.input_hashes or index.streamed) and not known:
        # A resume would recognise no row as settled and send the whole input again; a restart
        # would mix inputs in one audit, which verify --input can then never pass.
        raise UsageError(
            f"{flag}: no input is one the audit's runs read (a file compared by SHA-256, "
            "stdin only after a run that read stdin); use the same inputs, or write to a new "
            "--audit"
        )
    return Resume(
        index=index,
        file_hashes={f.name: f.sha256 for f in scanned.files},
        pseudonyms=pseudonyms_for(settings),
        restart_of=index.last_run if restart else None,
        streams=frozenset(streams),
    )


def _check_append(settings: Settings) -> None:
    """Refuse to append to an existing keyed audit without its key, or with another key."""
    if settings.audit_path.is_file():
        refuse_a_foreign_file(settings.audit_path)
        _check_audit_key(settings, load_resume_index(settings.audit_path), "")


def _check_audit_key(settings: Settings, index: ResumeIndex, prefix: str) -> None:
    """Refuse to add lines to a keyed audit without its key, or with another key.

    Without the key the new lines would not be HMAC-chained, and verify fails an unkeyed run
    after a keyed one; with another key they would break the chain and, under
    --audit-uid-hash, name every UID differently, so a resume would send settled UIDs again.
    """
    if not index.keyed:
        return
    if settings.audit_key is None:
        raise UsageError(
            f"{prefix}the audit's lines are chained with BULKDELETE_AUDIT_KEY; set the same key "
            "(or write to another --audit)"
        )
    if index.key_ids and index.key_ids != {audit_key_id(settings.audit_key)}:
        raise UsageError(
            f"{prefix}BULKDELETE_AUDIT_KEY is not the key the audit's runs used; set that key "
            "(or write to another --audit)"
        )


def operator() -> dict[str, str]:
    """Name who runs this, for the manifest: the login name and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER: a bare container
        user = f"uid {os.getuid()}"
    return {"user": user, "host": socket.gethostname()}


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
    ``resume`` comes from ``plan_run``, which checked the audit this run appends to.
    """
    feed = Feed(sources, Columns(settings.column, settings.no_header))
    streamed = any(isinstance(source, Stream) for source in sources)
    manifest = {"operator": operator(), "inputs": _manifest_inputs(sources, scanned)}
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


def _manifest_inputs(
    sources: Sequence[Source | Stream], scanned: InputSummary
) -> list[dict[str, Any]]:
    """Describe each input for ``run_started``: a file by its hash, a stream as streamed."""
    files = iter(scanned.files)
    described: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, Stream):
            # Its rows, size and hash are known where reading stops: see its input_read line.
            described.append(
                {"name": source.name, "streamed": True, "column": source.layout.column}
            )
        else:
            f = next(files)
            described.append(
                {
                    "name": f.name,
                    "rows": f.rows,
                    "sha256": f.sha256,
                    "bytes": f.byte_size,
                    "column": f.layout.column,
                }
            )
    return described


def check(settings: Settings, uids: Sequence[str]) -> Ended[CheckSummary]:
    """Read the UIDs back, appending what was found to the settings' audit."""
    _check_append(settings)
    return _run_program(lambda stop: read_back(settings, uids, check_id=new_run_id(), stop=stop))


def check_audit(settings: Settings, *, run_id: str | None = None) -> Ended[CheckSummary]:
    """Read back the UIDs the settings' audit records as deleted (by ``run_id`` only, if given).

    They are all read before the check starts appending to the same file.
    """
    return check(settings, list(deleted_uids(settings.audit_path, run_id=run_id)))
