"""What the audits of one report say of deactivated users, beside each UID's latest state.

A permanent run's ``not_found`` is ambiguous (absent, or deactivated and not erased) unless its
bulk probe spoke: a ``probed`` line naming the UID ``absent`` before its row line confirms the
absence (``erasure``). And a user whose latest state is a permanent run's ``not_found`` or
failure may have been deactivated by a soft run of the same report: its ``deleted`` line says
which run did it, and the report names that run ("deactivated by run X").

``Deactivations`` is told every record as ``report.build_report`` reads them (in order, each
later line deciding) and, at the end, ``settle`` keeps what still holds for each UID's latest
state. It holds the UIDs soft runs deactivated: memory grows with them, as the report's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bulkdelete.outcome import ROW_ONLY_OUTCOMES, Outcome
from bulkdelete.records import Probed, Record, RowOutcome

_LISTED = 20  # UIDs the text lists before "… and N more", as the report's other lists


class _State(Protocol):
    """What ``settle`` reads of a UID's latest state (``report.UidState``)."""

    @property
    def outcome(self) -> Outcome: ...

    @property
    def permanent(self) -> bool: ...


@dataclass(slots=True)
class Deactivations:
    """Confirmed absences and soft deactivations, read line by line: see the module docstring."""

    _announced: set[str] = field(default_factory=set)  # probed absent, row line still to come
    _absent: set[str] = field(default_factory=set)  # the row line followed: confirmed
    _soft: dict[str, str] = field(default_factory=dict)  # uid -> the soft run that deactivated it

    def __call__(self, _path: str, _number: int, record: Record) -> None:
        if isinstance(record, Probed):
            self._announced.update(record.absent)
        elif isinstance(record, RowOutcome) and record.outcome not in ROW_ONLY_OUTCOMES:
            uid = record.normalised_uid
            if uid is None:
                return  # build_report refuses such a line itself
            if uid in self._announced:
                self._announced.discard(uid)
                self._absent.add(uid)
            else:
                self._absent.discard(uid)  # a later line decides: its probe, if any, said no
            if record.outcome is Outcome.DELETED and not record.permanent:
                self._soft[uid] = record.run_id

    def settle(
        self, states: Mapping[str, _State]
    ) -> tuple[frozenset[str], tuple[str, ...], dict[str, str]]:
        """Return, by each UID's latest state: the UIDs a permanent run last found not found
        that its probe confirmed absent, the others (sorted: unproven), and the soft run that
        deactivated each UID a permanent run did not erase since."""
        not_found = {
            uid for uid, state in states.items()
            if state.permanent and state.outcome is Outcome.NOT_FOUND
        }  # fmt: skip
        absent = frozenset(self._absent & not_found)
        by = {
            uid: run
            for uid, run in sorted(self._soft.items())
            if states[uid].permanent and states[uid].outcome is not Outcome.DELETED
        }
        return absent, tuple(sorted(not_found - absent)), by


def deactivated_lines(absent: int, by: Mapping[str, str]) -> list[str]:
    """Return the report's text on the UIDs confirmed ``absent`` (a count) and on those a
    permanent run did not erase that a soft run deactivated (``by``: UID -> run id)."""
    lines = []
    if absent:
        lines = ["", f"{absent} UIDs not found by a permanent run are absent: its bulk probe "
                 "confirmed it"]  # fmt: skip
    if not by:
        return lines
    shown = [f"  {uid} (deactivated by run {run})" for uid, run in list(by.items())[:_LISTED]]
    if len(by) > _LISTED:
        shown.append(f"  … and {len(by) - _LISTED} more")
    return [
        *lines,
        "",
        f"{len(by)} UIDs a permanent run did not erase were deactivated by an earlier soft run "
        "(not found by a permanent run: deactivated, not erased; --erase-deactivated erases "
        "them):",
        *shown,
    ]
