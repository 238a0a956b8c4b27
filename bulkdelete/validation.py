"""What a valid UID is, and, for a value that is not one, the reason a person reads.

CometChat's UIDs are 1 to 100 characters of letters, digits, ``-`` and ``_``, and lowercased
when users are created. A value is trimmed of ASCII whitespace and lowercased; anything else is
refused with the most useful reason first (a spreadsheet formula, a path trick, a look-alike
letter), quoting at most one character of the value so that reasons stay short.
"""

from __future__ import annotations

import re
import unicodedata

from bulkdelete.columns import WHITESPACE

MAX_UID_LENGTH = 100

_UID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_UID_LENGTH}}}", re.ASCII)
# Common homoglyphs that NFKD leaves alone; NFKD already maps fullwidth and accented letters.
_LOOKALIKES = str.maketrans(
    "аеорсхуіјѕԁԛԝАВЕНІЈКМОРСТХοΑΒΕΗΙΚΜΝΟΡΤΧΥΖ‐‑‒–—−",  # noqa: RUF001 homoglyphs on purpose
    "aeopcxyijsdqwABEHIJKMOPCTXoABEHIKMNOPTXYZ------",
)


def validate_uid(value: str) -> tuple[str | None, str | None]:
    """Return ``(normalised uid, None)`` or ``(None, reason)``.

    The value is trimmed of ASCII whitespace and lowercased. Reasons never quote more than one
    character of the value, so they stay short whatever the input.
    """
    trimmed = value.strip(WHITESPACE)
    if _UID.fullmatch(trimmed):
        return trimmed.lower(), None
    return None, _reason(trimmed)


def _reason(value: str) -> str:  # noqa: PLR0911 one return per reason, most useful first
    if not value:
        return "empty"
    if len(value) > MAX_UID_LENGTH:
        return f"too long ({len(value)} characters, max {MAX_UID_LENGTH})"
    # OWASP CSV injection; a leading tab or CR was already trimmed, and "-" starts valid UIDs.
    if value[0] in "=+@":
        return "looks like a spreadsheet formula"
    if "/" in value or "\\" in value or ".." in value:
        return "path separator or traversal"
    if "%" in value:
        return "percent-encoding"
    if any(c in "?#&" for c in value):
        return "query or fragment character"
    if any(c in " \t" or (c.isspace() and unicodedata.category(c) != "Cc") for c in value):
        return "whitespace inside"
    for c in value:
        if unicodedata.category(c) == "Cc":
            return f"control character U+{ord(c):04X}"
    for c in value:
        if not c.isascii():
            return _non_ascii(c)
    bad = next(c for c in value if not (c.isalnum() or c in "-_"))
    return f"character {bad!r} not allowed (letters, digits, - and _ only)"


def _non_ascii(c: str) -> str:
    twin = c.translate(_LOOKALIKES)
    if twin == c:
        twin = unicodedata.normalize("NFKD", c)[:1]
    if twin != c and twin.isascii() and twin.isprintable():
        return f"non-ASCII character U+{ord(c):04X} (look-alike of {twin!r})"
    return f"non-ASCII character U+{ord(c):04X}"
