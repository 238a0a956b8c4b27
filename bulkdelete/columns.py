"""Choose the column that holds the UIDs, from an input's first record: never guess.

The first record (the first non-blank line, or the first CSV record) decides:

- Two or more fields: it is the header. The UIDs are in the column ``--column`` names, else in
  the one named ``uid`` (any case, trimmed). A header with neither is refused, naming its
  columns and ``--column``: the first column is never taken by default.
- One field: the input holds one value per line. That value is the header when it is ``uid``
  or the ``--column`` name (any case), and never with ``--no-header``. Otherwise a value that
  reads like a column name (``user_id``, ``UserID``, ``User ID``, ``id``, ``email`` ...) is
  refused as ambiguous, naming both flags; any other value is the first UID.

Nothing in a one-column input tells a header from a UID for certain (``customer`` could be
either), so the dry run and the ``--permanent`` confirmation show the column and the first
values read, and ``--column`` or ``--no-header`` make the reading explicit.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Final

from bulkdelete.errors import InputError

WHITESPACE: Final = " \t\n\r\x0b\x0c"  # ASCII whitespace only: anything else is judged, not trimmed
_HEADER_PREVIEW: Final = 10  # header fields quoted in a refusal
_NAME_PREVIEW: Final = 40  # characters of one header field quoted in a refusal
# Column names of user identifiers, compared without case, blanks, "_", "-" or ".".
_HEADER_WORDS: Final = frozenset(
    {
        "id", "ids", "uid", "uids", "uuid", "guid", "identifier", "user", "users", "userid",
        "userids", "username", "usernames", "member", "members", "memberid", "account",
        "accounts", "accountid", "login", "email", "emails", "emailaddress", "mail", "name",
        "handle",
    }
)  # fmt: skip
_SEPARATORS: Final = re.compile(r"[\s_.-]+")
# A word, then a separator, then what names an identifier: "user_id", "Member UID", "ticket-id".
_SEPARATED: Final = re.compile(r"[a-z]+(?:[\s_.-]+[a-z]+)*[\s_.-]+(?:u?u?id|guid|name)s?", re.I)
# camelCase and PascalCase: "userId", "UserID", "externalUid", "displayName".
_CAMEL: Final = re.compile(r"[A-Za-z]*[a-z](?:Id|ID|Uid|UID|UUID|Name)s?")


@dataclass(frozen=True, slots=True)
class Columns:
    """How the user said to find the UIDs: ``--column NAME`` and ``--no-header``; and the
    column of each row's request reference, ``--ref-column NAME`` (never guessed either)."""

    name: str | None = None
    no_header: bool = False
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """How one input is read: its header row, if any, and the column holding the UIDs.

    ``header`` holds the header's fields, trimmed (``None`` when the input has no header row
    and holds one UID per line); ``index`` is the column read, from 0; ``line`` the header's.
    """

    header: tuple[str, ...] | None = None
    index: int = 0
    line: int | None = None
    ref_index: int | None = None  # the column of references, when ``--ref-column`` names one

    @property
    def column(self) -> str | None:
        """Return the name of the column read, as the header writes it; None without a header."""
        return None if self.header is None else self.header[self.index]

    @property
    def ref_column(self) -> str | None:
        """Return the name of the column of references, as the header writes it; or None."""
        return (
            None if self.header is None or self.ref_index is None else self.header[self.ref_index]
        )


def looks_like_a_header(value: str) -> bool:
    """Tell whether a one-column input's first value reads like a column name."""
    value = value.strip(WHITESPACE)
    if _SEPARATORS.sub("", value).lower() in _HEADER_WORDS:
        return True
    return bool(_SEPARATED.fullmatch(value) or _CAMEL.fullmatch(value))


def choose_layout(
    first: list[str] | None, columns: Columns, *, source: str, line: int | None
) -> Layout:
    """Return the layout an input's first record gives; refuse (``InputError``) what is a guess.

    ``first`` is the first record's fields, or ``None`` for an input without any record.
    """
    if first is None:
        for flag, name in (("--column", columns.name), ("--ref-column", columns.ref)):
            if name is not None:
                message = f"has no header row, so {flag} {name} cannot be found"
                raise InputError(message, source=source, line=line)
        return Layout()
    fields = tuple(field.strip(WHITESPACE) for field in first)
    if len(fields) > 1:
        return _many(fields, columns, source=source, line=line)
    if columns.ref is not None:
        message = (
            f"has one column ({_shown(fields)}), so --ref-column {columns.ref} cannot be found: "
            "the references go in a column beside the UIDs, under a header row"
        )
        raise InputError(message, source=source, line=line)
    if columns.no_header:
        return Layout()
    value = fields[0]
    lowered = value.lower()
    if columns.name is not None:
        if lowered == columns.name.strip(WHITESPACE).lower():
            return Layout(fields, 0, line)
        if lowered == "uid":
            message = f"has no column {columns.name!r}; the header has {_shown(fields)}"
        else:
            message = f"has no header row, so --column {columns.name} cannot be found"
        raise InputError(message, source=source, line=line)
    if lowered == "uid":
        return Layout(fields, 0, line)
    if looks_like_a_header(value):
        shown = _snippet(value)
        raise InputError(
            f"the first value {shown!r} reads like a column name: pass "
            f"--column {shlex.quote(shown)} if it is the header, --no-header if it is a UID",
            source=source,
            line=line,
        )
    return Layout()


def _many(fields: tuple[str, ...], columns: Columns, *, source: str, line: int | None) -> Layout:
    """Return the layout of a header with several columns: the named one, never a default."""
    if columns.no_header:
        message = (
            f"has {len(fields)} columns ({_shown(fields)}), so its first line is a header and "
            "--no-header cannot apply: drop it and name the column of UIDs with --column NAME"
        )
        raise InputError(message, source=source, line=line)
    names = [field.lower() for field in fields]
    wanted = "uid" if columns.name is None else columns.name.strip(WHITESPACE).lower()
    if wanted in names:
        return Layout(
            fields, names.index(wanted), line, _ref_index(fields, names, columns, source, line)
        )
    if columns.name is None:
        message = (
            f"has {len(fields)} columns and none is named uid ({_shown(fields)}): name the "
            "column that holds the UIDs with --column NAME"
        )
    else:
        message = f"has no column {columns.name!r}; the header has {_shown(fields)}"
    raise InputError(message, source=source, line=line)


def _ref_index(
    fields: tuple[str, ...], names: list[str], columns: Columns, source: str, line: int | None
) -> int | None:
    """Return the index of the ``--ref-column`` column (None when none is named): it must be
    in the header, and not be the column of UIDs."""
    if columns.ref is None:
        return None
    wanted = columns.ref.strip(WHITESPACE).lower()
    if wanted not in names:
        message = f"has no column {columns.ref!r} (--ref-column); the header has {_shown(fields)}"
        raise InputError(message, source=source, line=line)
    return names.index(wanted)


def _shown(fields: tuple[str, ...]) -> str:
    shown = ", ".join(repr(_snippet(field)) for field in fields[:_HEADER_PREVIEW])
    more = len(fields) - _HEADER_PREVIEW
    return f"{shown} and {more} more" if more > 0 else shown


def _snippet(text: str) -> str:
    return text if len(text) <= _NAME_PREVIEW else text[:_NAME_PREVIEW] + "…"
