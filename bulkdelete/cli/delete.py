"""``bulkdelete delete``: delete (or erase) the users whose UIDs are in the inputs.

The command reads as its steps: every check, in the order the tests hold it to (the audit's
checks before the --permanent prompt), runs before anything is sent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from bulkdelete import logs
from bulkdelete.cli import console, environment, guards, options
from bulkdelete.cli.dry_run import tell_dry_run
from bulkdelete.cli.ending import end_delete
from bulkdelete.cli.exits import ExitCode
from bulkdelete.cli.signals import run_program
from bulkdelete.inputs import check_max_deletes, input_names, open_inputs, survey_files
from bulkdelete.resume import plan_run
from bulkdelete.settings import DEFAULTS, Secret, Settings


@click.command()
@click.argument("inputs", nargs=-1, metavar="[INPUT ...]")
@options.APP_ID
@options.REGION
@click.option(
    "--base-url",
    envvar="COMETCHAT_BASE_URL",
    help="API root including /v3 [env COMETCHAT_BASE_URL]; overrides --app-id/--region.",
)
@options.API_KEY_FILE
@click.option(
    "--permanent",
    is_flag=True,
    help="Erase users irreversibly; without it users are only deactivated.",
)
@click.option(
    "--erase-deactivated",
    is_flag=True,
    help="With --permanent: reactivate and erase the users a not-found answer hid because "
    "they were deactivated (found by a bulk probe).",
)
@click.option(
    "--audit",
    "audit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSONL audit to append to [default: bulkdelete-audit-<UTC time>.jsonl].",
)
@options.RATE
@click.option(
    "--max-share",
    type=float,
    default=DEFAULTS.max_share,
    show_default=True,
    help="Most of the advertised limit this run may take; the rest stays for the live app.",
)
@options.CONCURRENCY
@click.option(
    "--max-attempts",
    type=int,
    default=DEFAULTS.max_attempts,
    show_default=True,
    help="Attempts per UID, first one included.",
)
@click.option(
    "--max-retry-time",
    type=float,
    default=DEFAULTS.max_retry_time,
    show_default=True,
    help="Seconds one UID may spend being retried.",
)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULTS.timeout,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option(
    "--max-outage",
    type=float,
    default=DEFAULTS.max_outage,
    show_default=True,
    help="Seconds the API may stay down (no answer, 5xx, or only 429s) before the run stops "
    "with exit 3.",
)
@click.option(
    "--max-pause",
    type=float,
    default=DEFAULTS.max_pause,
    show_default=True,
    help="The longest one rate-limit header (Retry-After) may hold the run, in seconds.",
)
@click.option(
    "--column",
    help="Header of the column holding the UIDs [default: the column named uid; never a guess].",
)
@click.option(
    "--no-header",
    is_flag=True,
    help="One-column inputs have no header row: their first line is a UID.",
)
@click.option(
    "--batch-size",
    type=int,
    default=DEFAULTS.batch_size,
    show_default=True,
    help="UIDs per call of a soft run (DELETE /v3/users with uidsToDeactivate); 1 sends one "
    "DELETE /v3/users/{uid} each. A permanent run erases one user per call: --batch-size "
    "above 1 is refused with --permanent.",
)
@click.option(
    "--ref-column",
    help="Header of a column holding each row's request reference (a ticket id): kept in "
    "its audit line as ref, for `report --by-ref` and `--receipts`.",
)
@options.CA_BUNDLE
@click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    help="Refuse to start when the input holds more than this many valid UIDs; stdin "
    "cannot be counted first, so its run sends the first N and stops at the next.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run recorded in --audit: skip rows it settled, resend the rest.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Start over in --audit although its last run did not finish: send every row again.",
)
@click.option(
    "--audit-uid-hash",
    "uid_hash",
    is_flag=True,
    help="Name UIDs in the audit by an HMAC (key: env BULKDELETE_AUDIT_KEY), not in clear.",
)
@click.option(
    "--verify-deleted",
    is_flag=True,
    help="After the run, read back every UID it deleted (like `bulkdelete check`).",
)
@click.option(
    "--summary-json",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the end-of-run summary as JSON to this file.",
)
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the run's figures in Prometheus' text format to this file, for "
    "node_exporter's textfile collector (replaced atomically).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bar on a terminal, no progress log events elsewhere.",
)
@click.option("--dry-run", is_flag=True, help="Read and validate everything, send nothing.")
@click.option(
    "--invalid-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --dry-run: write the invalid rows (file, line, value, reason) as a CSV.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="An input without rows is a successful (audited) run, not an error.",
)
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS),
    default="info",
    show_default=True,
    help="Logs go to stderr.",
)
def delete(
    inputs: tuple[str, ...],
    app_id: str | None,
    region: str,
    base_url: str | None,
    api_key_file: Path | None,
    permanent: bool,
    erase_deactivated: bool,
    audit_path: Path | None,
    rate: float | None,
    max_share: float,
    concurrency: int,
    max_attempts: int,
    max_retry_time: float,
    timeout: float,
    max_outage: float,
    max_pause: float,
    column: str | None,
    no_header: bool,
    batch_size: int,
    ref_column: str | None,
    ca_bundle: Path | None,
    max_deletes: int | None,
    resume: bool,
    restart: bool,
    uid_hash: bool,
    verify_deleted: bool,
    summary_json: Path | None,
    metrics_file: Path | None,
    yes: bool,
    no_progress: bool,
    dry_run: bool,
    invalid_out: Path | None,
    allow_empty: bool,
    log_level: str,
) -> ExitCode:
    """Delete (or with --permanent, erase) the users whose UIDs are in INPUT files or stdin.

    INPUT is a CSV or text file, or - for stdin (the default when none is given), which is
    read as it comes.
    """
    key, audit_key = environment.api_key(api_key_file), environment.audit_key()
    reporter = console.start_logging(
        level=log_level,
        secrets=environment.secrets(key, audit_key),
        progress=not no_progress and not dry_run,
    )
    base_url, target = options.target(app_id, region, base_url)
    guards.check_delete_files(inputs, audit_path, summary_json, invalid_out, metrics_file)
    guards.refuse_conflicts(
        dry_run=dry_run,
        invalid_out=invalid_out,
        ca_bundle=ca_bundle,
        uid_hash=uid_hash,
        verify_deleted=verify_deleted,
        metrics_file=metrics_file,
        continues="--resume" if resume else "--restart" if restart else None,
        audit_path=audit_path,
    )
    guards.refuse_batched_erasure(permanent=permanent, batch_size=batch_size)
    if dry_run and not key.reveal():
        key = Secret("dry-run")  # a dry run sends nothing, so it needs no key
    settings = Settings(
        base_url=base_url,
        api_key=key,
        audit_key=audit_key,
        uid_hash=uid_hash,
        audit_path=audit_path or _default_audit_path(),
        permanent=permanent,
        erase_deactivated=erase_deactivated,
        rate=rate,
        max_share=max_share,
        concurrency=concurrency,
        max_attempts=max_attempts,
        max_retry_time=max_retry_time,
        timeout=timeout,
        max_outage=max_outage,
        max_pause=max_pause,
        column=column,
        no_header=no_header,
        ref_column=ref_column,
        batch_size=batch_size,
        target=target,
        ca_bundle=ca_bundle,
        proxy=environment.proxy(base_url),
    )
    confirm = permanent and not yes and not dry_run
    names = input_names(inputs)
    if confirm:
        console.refuse_unconfirmable(names)
    opened = open_inputs(names, settings, stdin=sys.stdin, allow_empty=allow_empty)
    if dry_run:  # it counts what a real run would meet, --max-deletes included
        return tell_dry_run(
            settings,
            opened,
            max_deletes=max_deletes,
            invalid_out=invalid_out,
            summary_json=summary_json,
        )
    found = survey_files(opened, settings) if max_deletes is not None or confirm else None
    if found is not None:
        check_max_deletes(found, max_deletes)  # the files alone; stdin is capped as it comes
    plan = plan_run(
        settings, opened.scanned, resume=resume, restart=restart, streams=opened.streams
    )
    if confirm and found is not None:  # after the audit's checks: never ask in vain
        console.confirm_permanent(settings, opened.layouts, found)
    click.echo(f"audit: {settings.audit_path}")
    from bulkdelete import launch  # noqa: PLC0415  (only a real run needs the HTTP stack)

    operator = environment.operator()
    ended = run_program(
        lambda stop: launch.delete(
            settings,
            opened,
            resume=plan,
            reporter=reporter,
            stop=stop,
            operator=operator,
            max_deletes=max_deletes,
        )
    )
    return end_delete(
        ended,
        settings,
        summary_json=summary_json,
        metrics_file=metrics_file,
        verify_deleted=verify_deleted,
    )


def _default_audit_path() -> Path:
    return Path(f"bulkdelete-audit-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl")
