"""The ledger of ``verify``: which audit lines settle which input rows, once each.

Every input row must be settled by exactly one audit line across all runs and files: a valid
row's UID by one ``deleted`` or ``not_found`` line (``failed`` is not final), an invalid or
duplicate row by one line with that outcome at its (file, line).

A ``--restart`` starts over on purpose, so it settles rows again that earlier runs settled.
Runs are grouped into attempts: a run that is not ``resumed`` begins one, and each ``--resume``
continues it. A row may be settled once in each attempt that is a restart, on top of once before
it; within one attempt, and across attempts that are not restarts (the same command run twice),
a second final line is still a failure.

Lines are named by references that sort as the lines do (``evidence`` packs file and line).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from typing import Protocol

from bulkdelete.audit import Pseudonyms
from bulkdelete.errors import InputError
from bulkdelete.outcome import Outcome
from bulkdelete.records import Location
from bulkdelete.rows import Row


class Findings(Protocol):
    """Where the ledger reports what it finds."""

    def find(self, path: str, line: int | None, problem: str) -> None:
        """Report a problem at a line of a file (an input's, say)."""

    def at(self, ref: int, problem: str) -> None:
        """Report a problem at an audit line."""

    def where(self, ref: int) -> str:
        """Name an audit line for a message."""


class Ledger:
    """The final lines of every UID and the lines of every invalid or duplicate row."""

    def __init__(self, findings: Findings) -> None:
        self._findings = findings
        self.attempts: list[int] = []  # the first line of each attempt, in order
        self._restarts: set[int] = set()  # the attempts that are a --restart
        self._finals: dict[str, int] = {}  # uid -> its first final line (of the last restart)
        self._extra_finals: dict[str, list[int]] = {}
        self._failed: dict[str, int] = {}  # uid -> its last failed line
        # (input path, line) -> the lines that settle that row: (line, outcome, source)
        self._settled: dict[tuple[str, int | None], list[tuple[int, Outcome, str]]] = {}

    def begin_attempt(self, ref: int, *, restart: bool) -> None:
        """Begin an attempt at line ``ref`` (a run that is not a ``--resume``)."""
        self.attempts.append(ref)
        if restart:
            self._restarts.add(len(self.attempts) - 1)

    def _restarted(self, earlier: int, later: int) -> bool:
        """Tell whether line ``later`` is in a restart begun after line ``earlier``'s attempt."""
        attempt = bisect.bisect_right(self.attempts, later) - 1
        return (
            attempt in self._restarts and attempt > bisect.bisect_right(self.attempts, earlier) - 1
        )

    def uid_line(self, ref: int, uid: str, outcome: Outcome) -> None:
        """Take a ``deleted``, ``not_found`` or ``failed`` line of ``uid``."""
        if outcome is Outcome.FAILED:
            self._failed[uid] = ref
        elif uid not in self._finals or self._restarted(self._finals[uid], ref):
            self._finals[uid] = ref
        else:
            self._extra_finals.setdefault(uid, []).append(ref)

    def row_line(self, path: str, line: int, ref: int, outcome: Outcome, source: str) -> None:
        """Take an ``invalid`` or ``duplicate`` line for ``line`` of the input file ``path``."""
        self._settled.setdefault((path, line), []).append((ref, outcome, source))

    def check(self, rows: Iterable[Row], pseudonyms: Pseudonyms) -> int:
        """Check that each row is settled once, then that no line settles a row not read.

        Return how many rows were read; ``rows`` name their file by the path the ledger
        knows, and valid UIDs are named as the audit names them through ``pseudonyms``.
        """
        count = 0
        try:
            for row in rows:
                count += 1
                self._row(row, pseudonyms)
        except InputError as exc:
            self._findings.find(exc.source, exc.line, f"cannot read the input: {exc}")
        for uid, ref in self._finals.items():
            self._findings.at(ref, f"uid {uid!r} has a final outcome but is in none of the inputs")
        for entries in self._settled.values():
            for ref, outcome, source in entries:
                self._findings.at(
                    ref, f"records {source} as {outcome}, but the inputs hold no such row"
                )
        return count

    def _row(self, row: Row, pseudonyms: Pseudonyms) -> None:
        name, number = Location.parse(row.source).parts()
        status, found = row.status, self._findings
        find, at, where = found.find, found.at, found.where
        if status == "valid":
            uid = pseudonyms.of(row.uid or "")
            if (first := self._finals.pop(uid, None)) is None:
                failed = self._failed.get(uid)
                why = "" if failed is None else f"; line {where(failed)} says failed"
                find(name, number, f"uid {uid!r} has no final outcome in any run{why}")
            elif extra := self._extra_finals.pop(uid, None):
                lines = ", ".join(where(ref) for ref in [first, *extra])
                at(extra[0], f"uid {uid!r} has {len(extra) + 1} final outcomes: lines {lines}")
            return
        entries = self._settled.pop((name, number), [])
        same = [ref for ref, outcome, _ in entries if outcome == status]
        for ref, outcome, _ in entries:
            if outcome != status:
                at(ref, f"records {row.source} as {outcome}, but that row is {status}")
        extra = [b for a, b in itertools.pairwise(same) if not self._restarted(a, b)]
        if not same:
            find(name, number, f"this {status} row has no {status} line in the audit")
        elif extra:
            lines = ", ".join(where(ref) for ref in same)
            at(extra[0], f"row {row.source} has {len(same)} {status} lines: lines {lines}")
