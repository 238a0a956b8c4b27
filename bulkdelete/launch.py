"""Start a delete run over checked inputs, or a read-back of an audit.

Kept apart from ``inputs`` so that commands which send nothing (``--dry-run``, ``report``,
``verify``) never import aiohttp: a dry run over a million rows must stay small. Setting
``stop`` asks the run for a graceful stop; cancelling the task stops it at once, the audit
still closed cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bulkdelete.inputs import Opened, columns_of
from bulkdelete.progress import Reporter
from bulkdelete.readback import deleted_uids, read_back
from bulkdelete.records import Input, InputFile, InputStream, Manifest, Operator
from bulkdelete.resume import Resume, check_append
from bulkdelete.rows import InputSummary, Source, Stream
from bulkdelete.run import new_run_id, run_delete
from bulkdelete.settings import Settings
from bulkdelete.streaming import Feed
from bulkdelete.summary import CheckSummary, Summary


async def delete(
    settings: Settings,
    opened: Opened,
    *,
    resume: Resume | None,
    reporter: Reporter,
    stop: asyncio.Event,
    operator: Operator | None = None,
    max_deletes: int | None = None,
) -> Summary:
    """Run the delete pipeline over the inputs, recording the manifest of this run.

    A stream among the inputs is read as it comes, and ``max_deletes`` caps the valid UIDs read
    (see ``rows``). ``resume`` comes from ``resume.plan_run``, which checked the audit this run
    appends to; ``operator`` names who runs it, for the manifest.
    """
    feed = Feed(opened.sources, columns_of(settings))
    manifest = Manifest(operator=operator, inputs=manifest_inputs(opened.sources, opened.scanned))
    return await run_delete(
        settings,
        feed.rows(),
        stop=stop,
        run_id=new_run_id(),
        manifest=manifest,
        resume=resume,
        progress=reporter,
        total=None if opened.streams else opened.scanned.rows,
        max_deletes=max_deletes,
        inputs_read=feed.read_records,
        on_halt=feed.stop_waiting,
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


async def check_audit(
    settings: Settings, *, stop: asyncio.Event, run_id: str | None = None
) -> CheckSummary:
    """Read back the UIDs the settings' audit records as deleted (by ``run_id`` only, if given),
    appending what was found to the same audit.

    They are all read before the check starts appending to the file, which is checked first:
    a keyed audit takes lines only from a run with its key.
    """
    uids = list(deleted_uids(settings.audit_path, run_id=run_id))
    check_append(settings)
    return await read_back(settings, uids, check_id=new_run_id(), stop=stop)
