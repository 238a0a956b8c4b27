"""How a delete run or a read-back ended, told on the terminal and as an exit code."""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path

import click

from bulkdelete import privatefile, render
from bulkdelete.cli.exits import ExitCode, exit_code, stopped_by
from bulkdelete.cli.signals import Ended, run_program
from bulkdelete.settings import Settings
from bulkdelete.summary import CheckSummary, RunStatus, Summary


def end_delete(
    ended: Ended[Summary],
    settings: Settings,
    *,
    summary_json: Path | None,
    verify_deleted: bool,
    metrics_file: Path | None = None,
) -> ExitCode:
    """Tell how a delete run ended (summary, --verify-deleted, --summary-json, --metrics-file);
    return its code."""
    summary, signum = ended.result, ended.signum
    if summary is None:  # a second signal cut the run short; the audit was closed cleanly
        return stopped_by(signum)
    resume_command = _resume_command(summary)
    # The disk that refused the audit may hold stdout's file too: stderr is the likelier way out.
    failed = summary.status is RunStatus.AUDIT_FAILED
    click.echo(render.summary_text(summary, resume_command=resume_command), err=failed)
    code = exit_code(summary, signum=signum)
    if verify_deleted and summary.status is RunStatus.COMPLETED:
        from bulkdelete import launch  # noqa: PLC0415  (loaded already by the run)

        run_id = summary.run_id
        checked = run_program(lambda stop: launch.check_audit(settings, stop=stop, run_id=run_id))
        if checked.result is not None and checked.result.head is not None:
            # The read-back appended to the audit: --summary-json keeps the head it ends with.
            head, lines = checked.result.head, checked.result.audit_lines
            summary = dataclasses.replace(summary, head=head, audit_lines=lines)
        if checked.result is None or not checked.result.all_gone:
            code = end_check(checked)
        else:
            click.echo(render.check_text(checked.result))
    if summary_json is not None:
        data = render.summary_json(summary, resume_command=resume_command)
        try:
            privatefile.write_bytes(summary_json, data)
        except OSError as exc:  # the run is over: report the file, keep the run's exit code
            click.echo(f"bulkdelete: error: cannot write --summary-json: {exc.strerror}", err=True)
            code = code or ExitCode.INCOMPLETE
    if metrics_file is not None:  # last: it records the command's exit code
        from bulkdelete import metrics  # noqa: PLC0415  (only a run asked for it needs it)

        try:
            metrics.write_metrics(metrics_file, summary, exit_code=code, now=time.time())
        except OSError as exc:
            click.echo(f"bulkdelete: error: cannot write --metrics-file: {exc.strerror}", err=True)
            code = code or ExitCode.INCOMPLETE
    return code


def _resume_command(summary: Summary) -> str | None:
    if summary.status is RunStatus.COMPLETED:
        return None
    # A stopped restart is continued like any run: --restart again would start over once more.
    args = [a for a in sys.argv[1:] if a not in {"--resume", "--restart"}] + ["--resume"]
    if "--audit" not in args and not any(a.startswith("--audit=") for a in args):
        args += ["--audit", str(summary.audit_path)]
    return shlex.join(["bulkdelete", *args])


def end_check(ended: Ended[CheckSummary]) -> ExitCode:
    """Tell what a read-back found; return its exit code."""
    summary = ended.result
    if summary is not None:
        click.echo(render.check_text(summary))
    if ended.signum is not None or summary is None:
        return stopped_by(ended.signum)
    if summary.fatal_code:
        return ExitCode.FATAL
    return ExitCode.OK if summary.all_gone else ExitCode.INCOMPLETE
