"""The exception tree: every error bulkdelete raises on purpose.

::

    BulkDeleteError
    ├── UsageError       a flag, setting or environment value is wrong   (exit 2)
    ├── InputError       an input file cannot be read as UIDs            (exit 2)
    ├── AuditError       an audit file cannot be read or appended to     (exit 2; 4 mid-run)
    └── FatalApiError    the API says no request of this run can succeed (exit 3)

A single UID's failure is never an exception: it is an ``outcome.Result`` value.
Context lives in keyword-only attributes so callers never parse messages.
"""

from __future__ import annotations


class BulkDeleteError(Exception):
    """Base class of every error bulkdelete raises on purpose."""


class UsageError(BulkDeleteError):
    """A flag, setting or environment value is wrong; nothing was sent."""


class InputError(BulkDeleteError):
    """An input file cannot be read as UIDs; nothing was sent.

    ``source`` names the file (``-`` for stdin) and ``line`` the 1-based line, when known.
    """

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


class AuditError(BulkDeleteError):
    """An audit file cannot be read or appended to.

    ``path`` names the file and ``line`` the 1-based line, when known.
    """

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class FatalApiError(BulkDeleteError):
    """The API answered with a code that means no request of this run can succeed."""

    def __init__(self, message: str, *, code: str | None, http_status: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
