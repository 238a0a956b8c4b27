"""``bulkdelete report``: tell what the audits say, as text, JSON or HTML, per request reference,
as receipts; and export UIDs."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from bulkdelete.audit import recorded_settings
from bulkdelete.cli import environment, guards, options
from bulkdelete.cli.exits import ExitCode
from bulkdelete.errors import UsageError


@click.command()
@click.argument("audits", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.option(
    "--by-ref",
    is_flag=True,
    help="Per request reference (delete --ref-column): its UIDs, their outcomes and times, "
    "and whether it is complete.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained, printable HTML report (works offline) for a reviewer.",
)
@click.option(
    "--receipts",
    "receipts_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also write one receipt per request reference (JSON and a printable HTML page) into "
    "this directory.",
)
@options.input_files(
    "With --html or --receipts: a file the runs read, for their verify verdict, as "
    "`verify --input`; repeat for each."
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
    by_ref: bool,
    html_path: Path | None,
    receipts_dir: Path | None,
    inputs: tuple[Path, ...],
    not_found_out: Path | None,
    failed_out: Path | None,
) -> ExitCode:
    """Tell what the audits say: the state of every UID, runs, failures, unknown fates."""
    from bulkdelete import exports, receipts, references, report_html  # noqa: PLC0415
    from bulkdelete import report as reporting  # noqa: PLC0415  (only this command needs them)
    from bulkdelete.review import gather  # noqa: PLC0415

    guards.check_output(html_path, "--html", audits)
    guards.check_output(failed_out, "--failed-out", audits)
    guards.check_output(not_found_out, "--not-found-out", audits)
    guards.check_output(receipts_dir, "--receipts", audits)  # click refused a file already
    if inputs and html_path is None and receipts_dir is None:
        raise UsageError("--input is read for the verify verdict of --html or --receipts")
    evidence = html_path is not None or receipts_dir is not None
    key = environment.audit_key() if evidence else None
    review = gather(
        audits, verify=evidence, inputs=inputs, key=key.reveal().encode() if key else None
    )
    if receipts_dir is not None and not review.refs:
        raise UsageError(
            "--receipts: no row of these audits carries a request reference (run delete with "
            "--ref-column NAME); nothing was written"
        )
    if html_path is not None:
        guards.write_output(
            html_path,
            "--html",
            lambda: report_html.write_html_report(audits, html_path, review=review),
        )
        click.echo(f"wrote the HTML report to {html_path}", err=True)
    if receipts_dir is not None:
        written = guards.write_output(
            receipts_dir, "--receipts", lambda: receipts.write_receipts(review, receipts_dir)
        )
        complete = sum(reference.complete for reference in review.refs)
        click.echo(
            f"wrote {len(written) // 2} receipts ({complete} complete) to {receipts_dir}", err=True
        )
    if by_ref:
        show = references.by_ref_json if as_json else references.by_ref_text
        click.echo(show(review.refs, review.report, review.collected), nl=False)
    else:
        result = review.report
        click.echo(
            reporting.report_json(result) if as_json else reporting.report_text(result), nl=False
        )
    exports_asked = [
        (out, flag, write, what)
        for out, flag, write, what in (
            (failed_out, "--failed-out", exports.write_failed_csv, "failed"),
            (
                not_found_out,
                "--not-found-out",
                exports.write_not_found_csv,
                "not found (permanent run)",
            ),
        )
        if out is not None
    ]
    if exports_asked and any(s.uid_hash for s in recorded_settings(audits)):
        raise UsageError(
            "the audit names UIDs by pseudonyms (--audit-uid-hash), which cannot be "
            "deleted; find the rows by their source (file:line) instead"
        )
    for out, flag, write, what in exports_asked:
        count = guards.write_output(out, flag, functools.partial(write, review.report, out))
        click.echo(f"wrote {count} {what} UIDs to {out}", err=True)
    return ExitCode.OK
