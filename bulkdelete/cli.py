"""The command line: parse flags and environment, build ``Settings``, run, map to an exit code.

Only this module and ``demo`` read the environment or the terminal. Every user mistake ends in
one line on stderr and exit code 2 before anything is sent; tracebacks are for bugs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import os
import shlex
import signal
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import click
import structlog

from bulkdelete import logs, privatefile, render
from bulkdelete._version import __version__
from bulkdelete.audit import read_records
from bulkdelete.columns import Columns, Layout
from bulkdelete.errors import (
    BulkDeleteError,
    FatalApiError,
    SettingError,
    UsageError,
)
from bulkdelete.progress import BarReporter, ConsoleWriter, choose_reporter
from bulkdelete.proxy import proxy_for, proxy_passwords
from bulkdelete.records import RunSettings, RunStarted
from bulkdelete.resume import plan_run
from bulkdelete.rows import STDIN, InputSummary, Source, Stream, read_rows, scan
from bulkdelete.settings import (
    DEFAULTS,
    REGIONS,
    Secret,
    Settings,
    default_base_url,
)
from bulkdelete.summary import CheckSummary, RunStatus, Summary
from bulkdelete.survey import Survey, survey

if TYPE_CHECKING:
    from bulkdelete.launch import Ended


_T = TypeVar("_T")


class ExitCode(enum.IntEnum):
    """The process exit codes, one meaning each."""

    OK = 0  # every UID ended deleted or not_found
    INCOMPLETE = 1  # finished, but some rows failed or were invalid (verify: FAIL)
    USAGE = 2  # a usage or input error; nothing was sent
    FATAL = 3  # a fatal API answer (bad key, no access, plan) aborted the run
    AUDIT_FAILED = 4  # the audit could not be written mid-run; requests may have been sent
    SIGINT = 130
    SIGTERM = 143


def exit_code(summary: Summary, *, signum: int | None = None) -> ExitCode:
    """Map a run's summary to the process exit code."""
    if summary.status is RunStatus.ABORTED:
        return ExitCode.FATAL
    if summary.status is RunStatus.AUDIT_FAILED:
        return ExitCode.AUDIT_FAILED
    if summary.status is RunStatus.INTERRUPTED:
        return ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT
    return ExitCode.OK if summary.all_final else ExitCode.INCOMPLETE


class RateType(click.ParamType[float | None, Any]):
    """``auto`` or a number of requests per second."""

    name = "auto|N"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | None:
        if value is None or value == "auto":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number", param, ctx)


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    click.echo(f"bulkdelete: error: {message}", err=True)
    sys.exit(code)


def _read_api_key(key_file: Path | None) -> Secret:
    if key_file is not None:
        try:
            value = key_file.read_text(encoding="utf-8").strip()
            mode = stat.S_IMODE(key_file.stat().st_mode)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --api-key-file {key_file}: {exc}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            # Not refused: the key may be shared on purpose (a group of operators), but an
            # accident here hands the key to every account on the machine.
            click.echo(
                f"bulkdelete: warning: --api-key-file {key_file} is readable by group or others "
                f"(mode {mode:04o}); make it private with: chmod 600 {shlex.quote(str(key_file))}",
                err=True,
            )
    else:
        value = os.environ.get("COMETCHAT_API_KEY", "").strip()
    return Secret(value)


def _target(app_id: str | None, region: str, base_url: str | None) -> tuple[str, str]:
    """Return the API root and how to name it to a person."""
    if base_url:
        return base_url, base_url
    if app_id:
        return default_base_url(app_id, region), f"app {app_id} in region {region}"
    raise UsageError("give --app-id (or COMETCHAT_APP_ID), or --base-url (or COMETCHAT_BASE_URL)")


def _check_output(path: Path | None, flag: str, keep: Sequence[Path] = ()) -> None:
    """Refuse an output file whose directory does not exist, or that is one of ``keep``."""
    if path is None:
        return
    if not path.absolute().parent.is_dir():
        raise UsageError(f"{flag} {path}: there is no directory {path.parent}")
    _refuse_overwrite(path, flag, keep)


def _refuse_overwrite(path: Path, flag: str, keep: Sequence[Path]) -> None:
    """Refuse ``path`` when it is one of ``keep``, the files a command reads or appends to."""
    target = path.resolve()
    for kept in keep:
        if kept.resolve() == target:
            raise UsageError(f"{flag} {path} would overwrite {kept}: name another file")


def _check_delete_files(
    inputs: Sequence[str],
    audit_path: Path | None,
    summary_json: Path | None,
    invalid_out: Path | None = None,
) -> None:
    """Refuse an audit or an output file that is an input, or an output that is the audit."""
    read = [Path(name) for name in inputs if name != STDIN]
    if audit_path is not None:
        _refuse_overwrite(audit_path, "--audit", read)
        read.append(audit_path)
    _check_output(summary_json, "--summary-json", read)
    _check_output(invalid_out, "--invalid-out", [*read, *([summary_json] if summary_json else [])])


def _write_output(path: Path, flag: str, write: Callable[[], _T]) -> _T:
    """Return what ``write`` returns; a file that cannot be written is one line, not a traceback."""
    try:
        return write()
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None


def _check_ca_bundle(path: Path | None) -> None:
    """Refuse a --ca-bundle that holds no PEM certificate, before anything is sent."""
    if path is None:
        return
    import ssl  # noqa: PLC0415  (only a run with --ca-bundle needs it)

    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"--ca-bundle {path} holds no usable PEM certificate ({exc})") from None


def _audit_key() -> Secret | None:
    key = os.environ.get("BULKDELETE_AUDIT_KEY", "")
    return Secret(key) if key else None


def _default_audit_path() -> Path:
    return Path(f"bulkdelete-audit-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl")


def _readable_twice(name: str) -> Path:
    """Refuse a FIFO or a socket: files are read twice (checked, then sent), a pipe only once."""
    path = Path(name)
    try:
        mode = path.stat().st_mode
    except OSError:
        return path  # reading it reports the problem
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise UsageError(f"{name} is a pipe, which can be read only once: pass it as stdin (-)")
    return path


_PERMANENT_NEEDS_YES = (
    "--permanent deletes cannot be undone: pass --yes to confirm when not on a terminal "
    "or when reading stdin"
)


def _input_names(inputs: Sequence[str]) -> list[str]:
    """Return the inputs to read, stdin when none is named; stdin may be named once."""
    names = list(inputs) or [STDIN]
    if names.count(STDIN) > 1:
        raise UsageError("stdin (-) can be read only once: name it once")
    return names


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The inputs of a run, checked: files scanned whole, stdin opened at its first row."""

    sources: list[Source | Stream]
    scanned: InputSummary  # the files among ``sources``
    layouts: dict[str, Layout]  # every input's layout, by name, in reading order


def _open_checked(
    inputs: Sequence[str], settings: Settings, *, confirm: bool, allow_empty: bool
) -> _Inputs:
    """Open and check the inputs before anything is sent.

    Files are scanned whole. Stdin is read as it comes, never stored: only its first record is
    judged here (a dry run reads it to its end), and ``--max-deletes`` caps it in the run.
    """
    names = _input_names(inputs)
    if confirm and STDIN in names:  # before waiting for stdin: it cannot be the terminal too
        raise UsageError(_PERMANENT_NEEDS_YES)
    sources, scanned = _open_inputs(names, Columns(settings.column, settings.no_header))
    empty = scanned.rows == 0 and all(s.empty for s in sources if isinstance(s, Stream))
    if empty and not allow_empty:
        raise UsageError(
            "the input holds no rows: nothing to do (--allow-empty makes that a success)"
        )
    return _Inputs(sources, scanned, _layouts(sources, scanned))


def _open_inputs(
    names: Sequence[str], columns: Columns
) -> tuple[list[Source | Stream], InputSummary]:
    """Scan the files whole, then open stdin, waiting for its first row."""
    files = [Source(path=_readable_twice(name), name=name) for name in names if name != STDIN]
    scanned = scan(files, column=columns.name, no_header=columns.no_header)
    unread = iter(files)
    sources: list[Source | Stream] = []
    for name in names:
        if name != STDIN:
            sources.append(next(unread))
        elif sys.stdin is None:
            raise UsageError("stdin is closed: name the input files instead")
        else:
            sources.append(Stream.from_fd(sys.stdin.fileno(), columns=columns))
    return sources, scanned


def _layouts(sources: Sequence[Source | Stream], scanned: InputSummary) -> dict[str, Layout]:
    """Return each input's layout, by name, in the order the inputs are read."""
    scans = iter(scanned.files)
    return {
        source.name: source.layout if isinstance(source, Stream) else next(scans).layout
        for source in sources
    }


def _check_max_deletes(valid: int, max_deletes: int | None) -> None:
    if max_deletes is not None and valid > max_deletes:
        raise UsageError(
            f"the input holds {valid} valid UIDs, more than --max-deletes {max_deletes}; "
            "nothing was sent"
        )


def _confirm_permanent(settings: Settings, layouts: dict[str, Layout], found: Survey) -> None:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(_PERMANENT_NEEDS_YES)
    click.echo(render.confirmation_text(settings, layouts, found), err=True)
    # Typing the count, not just "y", makes the reader look at how many users this is.
    valid = found.valid
    answer = click.prompt(f"Type {valid} to proceed", default="", show_default=False, err=True)
    if answer.strip() != str(valid):
        _fail("not confirmed; nothing was sent")


# Options that delete and check share.
_APP_ID = click.option(
    "--app-id", envvar="COMETCHAT_APP_ID", help="CometChat app id [env COMETCHAT_APP_ID]."
)
_REGION = click.option(
    "--region",
    envvar="COMETCHAT_REGION",
    type=click.Choice(REGIONS),
    default="us",
    show_default=True,
    help="App region [env COMETCHAT_REGION].",
)
_API_KEY_FILE = click.option(
    "--api-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read the REST API key from this file instead of env COMETCHAT_API_KEY.",
)
_RATE = click.option(
    "--rate",
    type=RateType(),
    default="auto",
    show_default=True,
    help="Ceiling in requests per second; auto starts at CometChat's documented 10,000/min. "
    "Either way the run follows the rate-limit headers and pauses on 429s.",
)
_CONCURRENCY = click.option(
    "--concurrency",
    type=int,
    default=DEFAULTS.concurrency,
    show_default=True,
    help="Most requests in flight (the run sizes it to rate x round trip below this).",
)
_CA_BUNDLE = click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="PEM file of CAs to trust for a private TLS endpoint.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulkdelete")
def cli() -> None:
    """Delete CometChat users in bulk, paced, retried, and accounted for in a JSONL audit."""


@cli.command()
@click.argument("inputs", nargs=-1, metavar="[INPUT ...]")
@_APP_ID
@_REGION
@click.option(
    "--base-url",
    envvar="COMETCHAT_BASE_URL",
    help="API root including /v3 [env COMETCHAT_BASE_URL]; overrides --app-id/--region.",
)
@_API_KEY_FILE
@click.option(
    "--permanent",
    is_flag=True,
    help="Erase users irreversibly; without it users are only deactivated.",
)
@click.option(
    "--audit",
    "audit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSONL audit to append to [default: bulkdelete-audit-<UTC time>.jsonl].",
)
@_RATE
@click.option(
    "--max-share",
    type=float,
    default=DEFAULTS.max_share,
    show_default=True,
    help="Most of the advertised limit this run may take; the rest stays for the live app.",
)
@_CONCURRENCY
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
    help="Seconds the API may stay down (no answer or 5xx) before the run stops with exit 3.",
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
@_CA_BUNDLE
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
    audit_path: Path | None,
    rate: float | None,
    max_share: float,
    concurrency: int,
    max_attempts: int,
    max_retry_time: float,
    timeout: float,
    max_outage: float,
    column: str | None,
    no_header: bool,
    ca_bundle: Path | None,
    max_deletes: int | None,
    resume: bool,
    restart: bool,
    uid_hash: bool,
    verify_deleted: bool,
    summary_json: Path | None,
    yes: bool,
    no_progress: bool,
    dry_run: bool,
    invalid_out: Path | None,
    allow_empty: bool,
    log_level: str,
) -> None:
    """Delete (or with --permanent, erase) the users whose UIDs are in INPUT files or stdin.

    INPUT is a CSV or text file, or - for stdin (the default when none is given), which is
    read as it comes.
    """
    api_key = _read_api_key(api_key_file)
    log = structlog.get_logger("bulkdelete")
    reporter = choose_reporter(
        stream=sys.stderr,
        enabled=not no_progress and not dry_run,
        # Looked up at each call: a bound method taken before configure() would keep the
        # default configuration, which prints to stdout.
        emit=lambda event, **fields: log.info(event, **fields),  # noqa: PLW0108
    )
    logs.configure(
        level=log_level,
        secrets=[
            api_key.reveal(),
            os.environ.get("BULKDELETE_AUDIT_KEY", ""),
            *proxy_passwords(os.environ),
        ],
        # With a live bar, log lines must go through its console to land above it.
        stream=ConsoleWriter(reporter.console) if isinstance(reporter, BarReporter) else None,
    )
    base_url, target = _target(app_id, region, base_url)
    _check_delete_files(inputs, audit_path, summary_json, invalid_out)
    if invalid_out is not None and not dry_run:
        raise UsageError(
            "--invalid-out lists the invalid rows of a --dry-run; a real run audits them "
            "(`bulkdelete report` counts them, each audit line names its file:line)"
        )
    _check_ca_bundle(ca_bundle)
    if uid_hash and verify_deleted:
        raise UsageError(
            "--verify-deleted needs the UIDs in the audit; it cannot follow --audit-uid-hash"
        )
    if (resume or restart) and audit_path is None:
        flag = "--resume" if resume else "--restart"
        raise UsageError(f"{flag} needs --audit naming the audit of the run to continue")
    if dry_run and not api_key.reveal():
        api_key = Secret("dry-run")  # a dry run sends nothing, so it needs no key
    settings = Settings(
        base_url=base_url,
        api_key=api_key,
        audit_key=_audit_key(),
        uid_hash=uid_hash,
        audit_path=audit_path or _default_audit_path(),
        permanent=permanent,
        rate=rate,
        max_share=max_share,
        concurrency=concurrency,
        max_attempts=max_attempts,
        max_retry_time=max_retry_time,
        timeout=timeout,
        max_outage=max_outage,
        column=column,
        no_header=no_header,
        target=target,
        ca_bundle=ca_bundle,
        proxy=proxy_for(base_url, os.environ),
    )
    confirm = permanent and not yes and not dry_run
    opened = _open_checked(inputs, settings, confirm=confirm, allow_empty=allow_empty)
    if dry_run:  # it counts what a real run would meet, --max-deletes included
        _dry_run(
            settings,
            opened,
            max_deletes=max_deletes,
            invalid_out=invalid_out,
            summary_json=summary_json,
        )
        return
    found = None
    if max_deletes is not None or confirm:
        files = [source for source in opened.sources if isinstance(source, Source)]
        found = survey(read_rows(files, column=settings.column, no_header=settings.no_header))
        _check_max_deletes(found.valid, max_deletes)  # the files alone; stdin is capped
    from bulkdelete import launch  # noqa: PLC0415  (only a real run needs the HTTP stack)

    streams = [source.name for source in opened.sources if isinstance(source, Stream)]
    plan = plan_run(settings, opened.scanned, resume=resume, restart=restart, streams=streams)
    if confirm and found is not None:  # after the audit's checks: never ask in vain
        _confirm_permanent(settings, opened.layouts, found)
    click.echo(f"audit: {settings.audit_path}")
    ended = launch.delete(
        settings,
        opened.sources,
        opened.scanned,
        resume=plan,
        reporter=reporter,
        max_deletes=max_deletes,
    )
    _end_delete(ended, settings, summary_json=summary_json, verify_deleted=verify_deleted)


def _dry_run(
    settings: Settings,
    opened: _Inputs,
    *,
    max_deletes: int | None,
    invalid_out: Path | None,
    summary_json: Path | None,
) -> None:
    """Tell what a real run would do, in text and in the files asked for; send nothing."""
    rows = read_rows(opened.sources, column=settings.column, no_header=settings.no_header)
    if invalid_out is None:
        found = survey(rows)
    else:
        found = _write_output(
            invalid_out, "--invalid-out", lambda: survey(rows, invalid_out=invalid_out)
        )
    _check_max_deletes(found.valid, max_deletes)
    click.echo(render.dry_run_text(settings, opened.layouts, found, invalid_out=invalid_out))
    if summary_json is not None:
        data = render.dry_run_json(settings, opened.layouts, opened.scanned, found)
        _write_output(
            summary_json, "--summary-json", lambda: privatefile.write_bytes(summary_json, data)
        )


def _end_delete(
    ended: Ended[Summary], settings: Settings, *, summary_json: Path | None, verify_deleted: bool
) -> NoReturn:
    """Tell how a delete run ended (summary, --summary-json, --verify-deleted) and exit."""
    summary, signum = ended.result, ended.signum
    if summary is None:  # a second signal cut the run short; the audit was closed cleanly
        sys.exit(ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT)
    resume_command = _resume_command(summary)
    # The disk that refused the audit may hold stdout's file too: stderr is the likelier way out.
    failed = summary.status is RunStatus.AUDIT_FAILED
    click.echo(render.summary_text(summary, resume_command=resume_command), err=failed)
    code = exit_code(summary, signum=signum)
    if summary_json is not None:
        data = render.summary_json(summary, resume_command=resume_command)
        try:
            privatefile.write_bytes(summary_json, data)
        except OSError as exc:  # the run is over: report the file, keep the run's exit code
            click.echo(f"bulkdelete: error: cannot write --summary-json: {exc.strerror}", err=True)
            code = code or ExitCode.INCOMPLETE
    if verify_deleted and summary.status is RunStatus.COMPLETED:
        from bulkdelete import launch  # noqa: PLC0415  (loaded already by the run)

        checked = launch.check_audit(settings, run_id=summary.run_id)
        if checked.result is None or not checked.result.all_gone:
            _exit_after_check(checked)
        click.echo(render.check_text(checked.result))
    sys.exit(code)


def _resume_command(summary: Summary) -> str | None:
    if summary.status is RunStatus.COMPLETED:
        return None
    # A stopped restart is continued like any run: --restart again would start over once more.
    args = [a for a in sys.argv[1:] if a not in {"--resume", "--restart"}] + ["--resume"]
    if "--audit" not in args and not any(a.startswith("--audit=") for a in args):
        args += ["--audit", str(summary.audit_path)]
    return shlex.join(["bulkdelete", *args])


@cli.command()
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
) -> None:
    """Tell what the audits say: the state of every UID, runs, failures, unknown fates."""
    from bulkdelete import report as reporting  # noqa: PLC0415  (only this command needs it)
    from bulkdelete import report_html  # noqa: PLC0415

    _check_output(html_path, "--html", audits)
    _check_output(failed_out, "--failed-out", audits)
    _check_output(not_found_out, "--not-found-out", audits)
    result = reporting.build_report(audits)
    if html_path is not None:
        _write_output(
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
    if exports and any(s.uid_hash for s in _run_settings(audits)):
        raise UsageError(
            "the audit names UIDs by pseudonyms (--audit-uid-hash), which cannot be "
            "deleted; find the rows by their source (file:line) instead"
        )
    for out, flag, write, what in exports:
        count = _write_output(out, flag, functools.partial(write, result, out))
        click.echo(f"wrote {count} {what} UIDs to {out}", err=True)


@cli.command()
@click.argument("audit", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@_APP_ID
@_REGION
@click.option(
    "--base-url",
    envvar="COMETCHAT_BASE_URL",
    help="API root including /v3 [default: the one the audit's last run used].",
)
@_API_KEY_FILE
@_RATE
@_CONCURRENCY
@_CA_BUNDLE
@click.option("--log-level", type=click.Choice(logs.LEVELS), default="warning", show_default=True)
def check(
    audit: Path,
    app_id: str | None,
    region: str,
    base_url: str | None,
    api_key_file: Path | None,
    rate: float | None,
    concurrency: int,
    ca_bundle: Path | None,
    log_level: str,
) -> None:
    """Read back every UID AUDIT records as deleted, and append what the API says.

    Exit 0 when the API returns none of them; 1 when some are still returned or unanswered.
    """
    api_key = _read_api_key(api_key_file)
    logs.configure(level=log_level, secrets=[api_key.reveal(), *proxy_passwords(os.environ)])
    runs = _run_settings([audit])
    if any(s.uid_hash for s in runs):
        raise UsageError(
            f"{audit} names UIDs by pseudonyms (--audit-uid-hash): nothing to read back"
        )
    if not base_url and not app_id and runs:
        base_url = runs[-1].base_url
    base_url, target = _target(app_id, region, base_url)
    settings = Settings(
        base_url=base_url,
        api_key=api_key,
        audit_key=_audit_key(),
        audit_path=audit,
        rate=rate,
        concurrency=concurrency,
        target=target,
        ca_bundle=ca_bundle,
        proxy=proxy_for(base_url, os.environ),
    )
    from bulkdelete import launch  # noqa: PLC0415  (only a read-back needs the HTTP stack)

    _exit_after_check(launch.check_audit(settings))


def _run_settings(audits: Sequence[Path]) -> list[RunSettings]:
    """Return the settings of every run the audits record, in order."""
    return [
        record.settings
        for path in audits
        for _number, record in read_records(path)
        if isinstance(record, RunStarted)
    ]


def _exit_after_check(ended: Ended[CheckSummary]) -> NoReturn:
    summary = ended.result
    if summary is not None:
        click.echo(render.check_text(summary))
    if ended.signum is not None or summary is None:
        sys.exit(ExitCode.SIGTERM if ended.signum == signal.SIGTERM else ExitCode.SIGINT)
    if summary.fatal_code:
        sys.exit(ExitCode.FATAL)
    sys.exit(ExitCode.OK if summary.all_gone else ExitCode.INCOMPLETE)


@cli.command()
@click.argument(
    "audits", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A file the runs read; repeat for each. Checks every run's manifest against its "
    "SHA-256 and that each row has exactly one final outcome.",
)
def verify(audits: tuple[Path, ...], inputs: tuple[Path, ...]) -> None:
    """Check AUDIT files: hash chain, run manifests, one final outcome per input row.

    Prints PASS, or FAIL with the first broken line and what is wrong; exits 0 only on PASS,
    1 otherwise. A keyed chain (HMAC) is checked with the key in env BULKDELETE_AUDIT_KEY.
    """
    from bulkdelete import evidence, verification  # noqa: PLC0415  (only this command needs it)

    key = _audit_key()
    result = evidence.verify(audits, inputs=inputs, key=key.reveal().encode() if key else None)
    click.echo(verification.verification_text(result))
    sys.exit(ExitCode.OK if result.ok else ExitCode.INCOMPLETE)


@cli.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--users-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="UIDs that exist: one per line, or a CSV with a uid column.",
)
@click.option("--all-exist", is_flag=True, help="Every UID exists until it is deleted.")
@click.option("--limit", type=int, help="Fixed-window rate limit: requests per window.")
@click.option(
    "--window", type=float, default=60.0, show_default=True, help="Window length in seconds."
)
@click.option(
    "--header-style", type=click.Choice(["old", "new", "both"]), default="both", show_default=True
)
@click.option("--bad-key-status", type=int, default=404, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fail-rate", type=float, default=0.0, help="Fraction of DELETEs answered 5xx.")
@click.option("--throttle-rate", type=float, default=0.0, help="Fraction answered 429.")
@click.option("--reset-rate", type=float, default=0.0, help="Fraction whose connection is reset.")
@click.option(
    "--slow-rate", type=float, default=0.0, help="Fraction answered after --slow-seconds."
)
@click.option("--slow-seconds", type=float, default=5.0, show_default=True)
@click.option(
    "--drop-rate", type=float, default=0.0, help="Fraction applied, then the answer dropped."
)
@click.option(
    "--fault-retry-after",
    type=float,
    default=1.0,
    show_default=True,
    help="Retry-After of injected 429s.",
)
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option(
    "--live-rate",
    type=float,
    default=0.0,
    help="Requests per second of simulated other clients of the app, using the same window.",
)
@click.option("--revoke-key-after", type=int, help="The key stops working after this many DELETEs.")
@click.option(
    "--success-body",
    default="documented",
    show_default=True,
    help="The 200 an applied DELETE gets: documented, deactivated-uids (the other documented "
    "shape of a soft delete), or one that proves nothing: html, empty, success-false, "
    "invalid-json, error-200, huge (200 MB, streamed).",
)
@click.option(
    "--portal", is_flag=True, help="Answer every request 200 with HTML, as a captive portal."
)
@click.option(
    "--redirect-to",
    metavar="URL",
    help="Answer every request 307 to URL + its path, as a redirecting proxy.",
)
@click.option(
    "--quote-key",
    is_flag=True,
    help="Quote the apikey sent in AUTH_ERR_APIKEY_NOT_FOUND messages, as mock servers do.",
)
def fake_server(
    host: str, port: int, users_file: Path | None, all_exist: bool, **options: Any
) -> None:
    """Run the CometChat stand-in; prints its base URL first. The key is env COMETCHAT_API_KEY."""
    from bulkdelete import fakeserver  # noqa: PLC0415  (the test server stays out of delete runs)

    users = fakeserver.load_users(users_file) if users_file else None
    key = os.environ.get("COMETCHAT_API_KEY", "").strip()
    if key:
        options["api_key"] = key
    try:
        config = fakeserver.FakeConfig(users=users, all_exist=all_exist, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def ready(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(
            _serve_until_signal(fakeserver.serve(config, host=host, port=port, ready=ready))
        )


async def _serve_until_signal(server: Any) -> None:
    task = asyncio.ensure_future(server)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@cli.command()
@click.option(
    "--permanent", is_flag=True, help="Erase instead of deactivating (on the fake server)."
)
@click.option(
    "--audit",
    "audit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the demo's audit.",
)
def demo(permanent: bool, audit_path: Path | None) -> None:
    """Delete the sample users from a fake CometChat server started in-process."""
    from bulkdelete import demo as demo_module  # noqa: PLC0415

    logs.configure(level="warning")
    summary = asyncio.run(
        demo_module.run_demo(permanent=permanent, audit_path=audit_path, echo=click.echo)
    )
    click.echo(render.summary_text(summary, resume_command=None))
    sys.exit(exit_code(summary))


# How the CLI's user gives the settings that no option of delete or check names.
_GIVEN_ELSEWHERE: Final = {
    "api_key": "COMETCHAT_API_KEY or pass --api-key-file",
    "audit_key": "BULKDELETE_AUDIT_KEY",
}


def message(error: BulkDeleteError) -> str:
    """Return the line the CLI says for an error: a setting is named as its user gives it,
    by its flag or its environment variable."""
    if not isinstance(error, SettingError):
        return str(error)
    flags = {
        param.name: param.opts[0]
        for command in (delete, check)
        for param in command.params
        if isinstance(param, click.Option) and param.name
    }
    return error.worded({**flags, **_GIVEN_ELSEWHERE})


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the CLI; turn every user mistake into one line on stderr and a documented exit code."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="bulkdelete",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(ExitCode.USAGE)
    except click.UsageError as exc:
        _fail(exc.format_message())
    except click.Abort:
        _fail("aborted; nothing was sent", ExitCode.SIGINT)
    except FatalApiError as exc:
        _fail(str(exc), ExitCode.FATAL)
    except BulkDeleteError as exc:
        _fail(message(exc))
    except BrokenPipeError:
        sys.exit(ExitCode.INCOMPLETE)
    sys.exit(ExitCode.OK)
