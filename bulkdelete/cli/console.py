"""What the CLI shows on the terminal and asks there: logs, the progress bar, the confirmation
of a permanent run."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import structlog

from bulkdelete import logs, render
from bulkdelete.columns import Layout
from bulkdelete.errors import UsageError
from bulkdelete.progress import BarReporter, ConsoleWriter, Reporter, choose_reporter
from bulkdelete.rows import STDIN
from bulkdelete.settings import Settings
from bulkdelete.survey import Survey

PERMANENT_NEEDS_YES = (
    "--permanent deletes cannot be undone: pass --yes to confirm when not on a terminal "
    "or when reading stdin"
)


def start_logging(*, level: str, secrets: Sequence[str], progress: bool) -> Reporter:
    """Configure the logs (to stderr, ``secrets`` masked) and return the progress reporter:
    a live bar on a terminal, progress log events elsewhere, nothing without ``progress``."""
    log = structlog.get_logger("bulkdelete")
    reporter = choose_reporter(
        stream=sys.stderr,
        enabled=progress,
        # Looked up at each call: a bound method taken before configure() would keep the
        # default configuration, which prints to stdout.
        emit=lambda event, **fields: log.info(event, **fields),  # noqa: PLW0108
    )
    logs.configure(
        level=level,
        secrets=secrets,
        # With a live bar, log lines must go through its console to land above it.
        stream=ConsoleWriter(reporter.console) if isinstance(reporter, BarReporter) else None,
    )
    return reporter


def refuse_unconfirmable(names: Sequence[str]) -> None:
    """Refuse a permanent run reading stdin: it cannot be the terminal that confirms too.

    Checked before waiting for stdin's first row.
    """
    if STDIN in names:
        raise UsageError(PERMANENT_NEEDS_YES)


def confirm_permanent(settings: Settings, layouts: dict[str, Layout], found: Survey) -> None:
    """Show what a permanent run would erase and go on only if the count is typed back."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(PERMANENT_NEEDS_YES)
    click.echo(render.confirmation_text(settings, layouts, found), err=True)
    # Typing the count, not just "y", makes the reader look at how many users this is.
    valid = found.valid
    answer = click.prompt(f"Type {valid} to proceed", default="", show_default=False, err=True)
    if answer.strip() != str(valid):
        raise UsageError("not confirmed; nothing was sent")
