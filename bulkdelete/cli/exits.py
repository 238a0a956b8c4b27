"""The process exit codes, one meaning each, and how a run's ending maps to one."""

from __future__ import annotations

import enum
import signal

from bulkdelete.summary import RunStatus, Summary


class ExitCode(enum.IntEnum):
    """The process exit codes, one meaning each."""

    OK = 0  # every UID ended deleted or not_found
    INCOMPLETE = 1  # finished, but some rows failed or were invalid (verify: FAIL)
    USAGE = 2  # a usage or input error; nothing was sent
    FATAL = 3  # a fatal API answer (bad key, no access, plan) aborted the run
    AUDIT_FAILED = 4  # the audit could not be written mid-run; requests may have been sent
    SIGINT = 130
    SIGTERM = 143


def stopped_by(signum: int | None) -> ExitCode:
    """Return the exit code of a program a signal stopped."""
    return ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT


def exit_code(summary: Summary, *, signum: int | None = None) -> ExitCode:
    """Map a run's summary to the process exit code."""
    if summary.status is RunStatus.ABORTED:
        return ExitCode.FATAL
    if summary.status is RunStatus.AUDIT_FAILED:
        return ExitCode.AUDIT_FAILED
    if summary.status is RunStatus.INTERRUPTED:
        return stopped_by(signum)
    return ExitCode.OK if summary.all_final else ExitCode.INCOMPLETE
