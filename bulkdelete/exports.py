"""Export UIDs from a report as CSV files that ``bulkdelete delete`` accepts."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

from bulkdelete import privatefile
from bulkdelete.outcome import Outcome
from bulkdelete.report import Report

_FAILED_CSV_HEADER: Final = ("uid", "error_code", "http_status", "last_run")


def write_failed_csv(report: Report, path: Path) -> int:
    """Write the UIDs whose latest state is failed to ``path``; return how many.

    UTF-8 CSV with LF line ends and a ``uid`` column, so ``bulkdelete delete`` takes it as input.
    UIDs in unknown state are not failed and are not written.
    """
    return _write_states(report, path, Outcome.FAILED, only=None)


def write_not_found_csv(report: Report, path: Path) -> int:
    """Write the UIDs a permanent run last found not found (maybe only deactivated); return how
    many. Same format as ``write_failed_csv``: a CSV that ``bulkdelete delete`` takes."""
    return _write_states(report, path, Outcome.NOT_FOUND, only=set(report.not_found_in_permanent))


def _write_states(report: Report, path: Path, outcome: Outcome, *, only: set[str] | None) -> int:
    states = sorted(
        (
            s
            for s in report.uids.values()
            if s.outcome is outcome and (only is None or s.uid in only)
        ),
        key=lambda s: s.uid,
    )
    with privatefile.open_text(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(_FAILED_CSV_HEADER)
        writer.writerows((s.uid, s.error_code or "", s.http_status or "", s.run_id) for s in states)
    return len(states)
