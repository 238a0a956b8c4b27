"""``bulkdelete report``: tell what the audits say, as text, JSON or HTML, and export UIDs."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from bulkdelete.audit import recorded_settings
from bulkdelete.cli import guards
from bulkdelete.cli.exits import ExitCode
from bulkdelete.errors import UsageError


@click.command()
@click.argument("audits", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report (works offline) for a reviewer.",
)
@click.option(
    "--not-found-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the UIDs a permanent run found not found (maybe only deactivated) as a CSV.",
)
@click.option(
    "--failed-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the UIDs whose latest outcome is failed as a CSV that `delete` accepts.",
)
def report(
    audits: tuple[Path, ...],
    as_json: bool,
    html_path: Path | None,
    not_found_out: Path | None,
    failed_out: Path | None,
) -> ExitCode:
    """Tell what the audits say: the state of every UID, runs, failures, unknown fates."""
    from bulkdelete import report as reporting  # noqa: PLC0415  (only this command needs it)
    from bulkdelete import report_html  # noqa: PLC0415

    guards.check_output(html_path, "--html", audits)
    guards.check_output(failed_out, "--failed-out", audits)
    guards.check_output(not_found_out, "--not-found-out", audits)
    result = reporting.build_report(audits)
    if html_path is not None:
        guards.write_output(
            html_path,
            "--html",
            lambda: report_html.write_html_report(audits, html_path, report=result),
        )
        click.echo(f"wrote the HTML report to {html_path}", err=True)
    click.echo(
        reporting.report_json(result) if as_json else reporting.report_text(result), nl=False
    )
    exports = [
        (out, flag, write, what)
        for out, flag, write, what in (
            (failed_out, "--failed-out", reporting.write_failed_csv, "failed"),
            (
                not_found_out,
                "--not-found-out",
                reporting.write_not_found_csv,
                "not found (permanent run)",
            ),
        )
        if out is not None
    ]
    if exports and any(s.uid_hash for s in recorded_settings(audits)):
        raise UsageError(
            "the audit names UIDs by pseudonyms (--audit-uid-hash), which cannot be "
            "deleted; find the rows by their source (file:line) instead"
        )
    for out, flag, write, what in exports:
        count = guards.write_output(out, flag, functools.partial(write, result, out))
        click.echo(f"wrote {count} {what} UIDs to {out}", err=True)
    return ExitCode.OK
