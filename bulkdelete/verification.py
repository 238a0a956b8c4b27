"""What ``verify`` found, and how ``bulkdelete verify`` prints it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the file and line (``None`` for the whole file) and what is wrong there."""

    path: str
    line: int | None
    problem: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Head:
    """Where one audit ends: the link of its last line (``None`` when its chain is keyed and no
    key was given, or it holds no line) and its complete lines."""

    path: str
    hash: str | None
    lines: int

    def __str__(self) -> str:
        """Return the head as ``verify --expect-head`` takes it: ``HASH:LINES``."""
        return f"{self.hash}:{self.lines}"


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found: ``ok`` only when there is no finding; the first problem first.

    ``head`` is the link of the last audit's last line (``None`` when its chain is keyed and no
    key was given), ``heads`` that of every audit. ``notes`` are not failures.
    """

    ok: bool
    findings: tuple[Finding, ...]
    lines: int
    runs: int
    head: str | None
    rows_checked: int = 0
    notes: tuple[str, ...] = ()
    heads: tuple[Head, ...] = ()


def verification_text(v: Verification) -> str:
    """Return what ``bulkdelete verify`` prints: ``PASS`` or ``FAIL`` first, then details."""
    if v.ok:
        rows = f"; {v.rows_checked} input rows, one final outcome each" if v.rows_checked else ""
        lines = [f"PASS: {v.lines} lines in {v.runs} runs, chain intact{rows}"]
    else:
        lines = [f"FAIL: {v.findings[0]}", *(f"also: {f}" for f in v.findings[1:])]
        lines.append(f"checked: {v.lines} lines, {v.runs} runs, {v.rows_checked} input rows")
    for head in v.heads:
        shown = (
            str(head)
            if head.hash
            else "unknown (the last run's chain is keyed and no key was given)"
        )
        lines.append(f"head: {shown}" if len(v.heads) == 1 else f"head of {head.path}: {shown}")
    lines += [f"note: {note}" for note in v.notes]
    return "\n".join(lines)
