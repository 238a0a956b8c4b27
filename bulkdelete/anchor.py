"""The anchored head: check that an audit still ends where someone wrote down that it ended.

A run's summary prints the audit's head as ``HASH:LINES``: the link of its last line, which
commits to every line before it, and the lines the audit holds. Written down outside the audit
(a ticket, a receipt, the nightly job's log), it lets ``verify --expect-head`` catch what the
chain alone cannot: an audit cut after an honest line, or whose last line was edited (anyone
can recompute an unkeyed chain, and no line follows the last one to break). An audit appended
to since (a read-back, a resume) does not end there either; then the finding says which line
the head written down is, and how many lines came after it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bulkdelete.audit import link
from bulkdelete.verification import Finding, Head, Verification

_EXPECTED: Final = re.compile(r"(?P<hash>[0-9a-f]{64})(?::(?P<lines>[0-9]+))?")


@dataclass(frozen=True, slots=True)
class Expected:
    """A head written down: the link of the audit's last line, and maybe its line count."""

    hash: str
    lines: int | None = None

    @classmethod
    def parse(cls, text: str) -> Expected:
        """Read ``HASH`` or ``HASH:LINES``; raise ``ValueError`` for anything else."""
        found = _EXPECTED.fullmatch(text.strip().lower())
        if found is None:
            raise ValueError("a head is 64 hex digits, optionally followed by :LINES")
        lines = found["lines"]
        return cls(found["hash"], None if lines is None else int(lines))


def check_heads(
    v: Verification, expected: Sequence[Expected], *, key: bytes | None
) -> Verification:
    """Return ``v`` failed by a finding for each audit that does not end at its expected head.

    ``expected`` holds one head per audit, in the order the audits were verified; ``key`` is
    the audit key, for the links of keyed runs.
    """
    found = [
        finding
        for head, wanted in zip(v.heads, expected, strict=True)
        if (finding := _mismatch(head, wanted, key)) is not None
    ]
    if not found:
        return v
    # The anchor comes first: it is what the reviewer asked about.
    return dataclasses.replace(v, ok=False, findings=(*found, *v.findings))


def _mismatch(head: Head, wanted: Expected, key: bytes | None) -> Finding | None:
    if head.hash is None:
        problem: str | None = (
            "holds no complete line, so it cannot end at the expected head"
            if head.lines == 0
            else "the last run's chain is keyed: set BULKDELETE_AUDIT_KEY to check its head"
        )
    elif head.hash != wanted.hash:
        problem = _moved(head, wanted, key)
    elif wanted.lines is not None and wanted.lines != head.lines:
        problem = (
            f"ends with the expected last line, but holds {head.lines} lines, not "
            f"{wanted.lines}: lines were added or removed before it"
        )
    else:
        return None
    return Finding(head.path, None, f"{problem} (--expect-head {wanted.hash[:12]}…)")


def _moved(head: Head, wanted: Expected, key: bytes | None) -> str:
    """Say how an audit that ends elsewhere differs from the one whose head was written down."""
    at = _line_linked_as(Path(head.path), wanted.hash, key)
    if at is not None:
        return (
            f"goes on after the expected head, which is line {at}'s: {head.lines - at} lines "
            "follow it (a later run or read-back appended them, or lines were added)"
        )
    if wanted.lines is not None and head.lines < wanted.lines:
        return (
            f"holds {wanted.lines - head.lines} fewer lines than when the head was written "
            f"down ({head.lines}, not {wanted.lines}): its end was cut off"
        )
    return (
        "does not end at the expected head and no line of it has that head: its last lines "
        "were edited or cut, or the head is another audit's"
    )


def _line_linked_as(path: Path, wanted: str, key: bytes | None) -> int | None:
    """Return the number of the line whose link is ``wanted``, keyed or not; None if none is."""
    keys = {None, key}
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    return None  # a torn tail: no run wrote it whole
                if any(link(raw[:-1], k) == wanted for k in keys):
                    return number
    except OSError:
        return None  # verify reported an unreadable audit already
    return None
