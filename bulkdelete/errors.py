"""The exception tree: every error bulkdelete raises on purpose.

::

    BulkDeleteError
    ├── UsageError       a flag, setting or environment value is wrong   (exit 2)
    │   └── SettingError     one setting is wrong, named as ``setting``
    ├── InputError       an input file cannot be read as UIDs            (exit 2)
    ├── AuditError       an audit file cannot be read or appended to     (exit 2; 4 mid-run)
    └── FatalApiError    the API says no request of this run can succeed (exit 3)

A single UID's failure is never an exception: it is an ``outcome.Result`` value.
Context lives in keyword-only attributes so callers never parse messages.
"""

from __future__ import annotations

from collections.abc import Mapping


class BulkDeleteError(Exception):
    """Base class of every error bulkdelete raises on purpose."""


class UsageError(BulkDeleteError):
    """A flag, setting or environment value is wrong; nothing was sent."""


class SettingError(UsageError):
    """A setting's value is wrong, or does not fit the audit a run would append to.

    ``setting`` names the setting at fault: a ``Settings`` field (``rate``) or a choice a
    function takes (``resume``). The message is a template that names the settings it speaks
    of as fields (``"{rate} must be above 0, got {got}"``), ``{setting}`` standing for
    ``setting``, and takes the values it quotes as keyword arguments. ``str()`` says each
    setting by its own name; ``worded`` says it as a caller knows it, so that the CLI can name
    its flags without parsing messages.
    """

    def __init__(self, template: str, *, setting: str, **values: object) -> None:
        self.setting = setting
        self.values = values
        self._template = template
        super().__init__(self.worded({}))

    def worded(self, names: Mapping[str, str]) -> str:
        """Return the message saying each setting as ``names`` does, or by its own name."""
        return self._template.format_map(
            _Said(names, setting=names.get(self.setting, self.setting), **self.values)
        )


class _Said(dict[str, object]):
    """A template's fields: the values given, any other field a setting said by its name."""

    def __init__(self, names: Mapping[str, str], **values: object) -> None:
        super().__init__(values)
        self._names = names

    def __missing__(self, setting: str) -> str:
        return self._names.get(setting, setting)


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
