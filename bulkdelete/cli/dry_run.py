"""``delete --dry-run``: tell what a real run would do, in text and in the files asked for."""

from __future__ import annotations

from pathlib import Path

import click

from bulkdelete import privatefile, render
from bulkdelete.cli.exits import ExitCode
from bulkdelete.cli.guards import write_output
from bulkdelete.inputs import Opened, check_max_deletes, survey_all
from bulkdelete.settings import Settings


def tell_dry_run(
    settings: Settings,
    opened: Opened,
    *,
    max_deletes: int | None,
    invalid_out: Path | None,
    summary_json: Path | None,
) -> ExitCode:
    """Count what a real run would meet, --max-deletes included, and send nothing."""
    if invalid_out is None:
        found = survey_all(opened, settings, invalid_out=None)
    else:
        found = write_output(
            invalid_out,
            "--invalid-out",
            lambda: survey_all(opened, settings, invalid_out=invalid_out),
        )
    check_max_deletes(found, max_deletes)
    click.echo(render.dry_run_text(settings, opened.layouts, found, invalid_out=invalid_out))
    if summary_json is not None:
        data = render.dry_run_json(settings, opened.layouts, opened.scanned, found)
        write_output(
            summary_json, "--summary-json", lambda: privatefile.write_bytes(summary_json, data)
        )
    return ExitCode.OK
