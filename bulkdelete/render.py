"""Human-readable text for the end of a run and for a dry run.

Plain text that reads well in a terminal and in a CI log alike; machines read the audit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

from bulkdelete.columns import Layout
from bulkdelete.outcome import Outcome, ReadBack
from bulkdelete.rows import Row
from bulkdelete.settings import Settings
from bulkdelete.summary import CheckSummary, RunStatus, Summary

_STATUS_LINE = {
    RunStatus.COMPLETED: "finished",
    RunStatus.ABORTED: "ABORTED",  # the "stopped because" line says by what
    RunStatus.INTERRUPTED: "interrupted",
}


def summary_text(summary: Summary, *, resume_command: str | None) -> str:
    """Return the end-of-run summary a person reads."""
    mode = "PERMANENT erasure" if summary.permanent else "deactivation"
    lines = [
        f"bulkdelete {_STATUS_LINE[summary.status]}: {summary.rows} rows in "
        f"{summary.duration:.1f} s ({mode}, {summary.target})",
    ]
    width = max(len(o.value) for o in Outcome)
    lines += [f"  {o.value:<{width}}  {summary.counts.get(o, 0):>9}" for o in Outcome]
    if summary.skipped:
        lines.append(f"  {'skipped':<{width}}  {summary.skipped:>9}  (settled by an earlier run)")
    if summary.unsent:
        lines.append(
            f"  {'unsent':<{width}}  {summary.unsent:>9}  (read, not sent: the run stopped)"
        )
    if summary.unanswered:
        lines.append(
            f"  {'no answer':<{width}}  {summary.unanswered:>9}  (sent, but the run stopped "
            "waiting: fate unknown; `bulkdelete report` names them)"
        )
    lines += [f"  failed with {code}: {n}" for code, n in summary.failures_by_code.items()]
    lines.append(
        f"  {summary.requests} requests, {summary.average_rate:.1f}/s on average, "
        f"{summary.peak_rate:.0f}/s at peak; {summary.retried_uids} UIDs needed retries"
    )
    if summary.not_found_unproven:
        lines.append(
            f"  note: {summary.not_found_unproven} UIDs were not found. CometChat says so for "
            "deactivated users too, so these may be deactivated, not erased (see README)."
        )
    if summary.fatal_code or summary.fatal_message:
        reason = ": ".join(part for part in (summary.fatal_code, summary.fatal_message) if part)
        lines.append(f"  stopped because: {reason}")
    lines.append(f"  audit: {summary.audit_path}")
    if resume_command:
        lines.append(f"  to finish the job, run: {resume_command}")
    return "\n".join(lines)


def summary_json(summary: Summary, *, resume_command: str | None) -> bytes:
    """Return the same facts as ``summary_text`` as one JSON document, for machines."""
    return orjson.dumps(
        {
            "run_id": summary.run_id,
            "status": summary.status.value,
            "permanent": summary.permanent,
            "target": summary.target,
            "audit": str(summary.audit_path),
            "rows": summary.rows,
            "outcomes": {o.value: summary.counts.get(o, 0) for o in Outcome},
            "skipped": summary.skipped,
            "unsent": summary.unsent,
            "unanswered": summary.unanswered,
            "failures_by_code": dict(summary.failures_by_code),
            "requests": summary.requests,
            "duration_seconds": round(summary.duration, 3),
            "average_rate": round(summary.average_rate, 3),
            "peak_rate": round(summary.peak_rate, 3),
            "retried_uids": summary.retried_uids,
            "not_found_in_permanent_run": summary.not_found_unproven,
            "fatal_code": summary.fatal_code,
            "fatal_message": summary.fatal_message,
            "all_final": summary.all_final,
            "resume_command": resume_command,
        },
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )


FIRST_VALUES: Final = 3  # values of each input shown before a real run, to check the column
_VALUE_PREVIEW: Final = 40


@dataclass(slots=True)
class Preview:
    """One pass over rows: counts by status and invalid reason, and each input's first values."""

    rows: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    first_values: dict[str, list[str]] = field(default_factory=dict)  # input name -> raw values

    @classmethod
    def of(cls, rows: Iterable[Row]) -> Preview:
        """Read every row once."""
        preview = cls()
        for row in rows:
            preview.rows += 1
            preview.statuses[row.status] += 1
            if row.reason:
                preview.reasons[row.reason] += 1
            values = preview.first_values.setdefault(row.source.rpartition(":")[0], [])
            if len(values) < FIRST_VALUES:
                values.append(row.raw)
        return preview

    @property
    def valid(self) -> int:
        """Return how many rows a real run would send."""
        return self.statuses["valid"]


def columns_text(layouts: Mapping[str, Layout], preview: Preview) -> list[str]:
    """Return one line per input: where its UIDs are read from, and the first values read.

    A person reads them before anything is sent, to catch a wrong column or a header read as
    a UID.
    """
    lines = []
    for name, layout in layouts.items():
        if layout.header is None:
            where = "no header row, one UID per line"
        elif len(layout.header) == 1:
            where = f"header {layout.column!r} on line {layout.line}, one column"
        else:
            where = f"column {layout.column!r} ({layout.index + 1} of {len(layout.header)})"
        values = preview.first_values.get(name, [])
        shown = ", ".join(repr(_preview(value)) for value in values) or "none"
        lines.append(f"  {name}: {where}; first values {shown}")
    return lines


def dry_run_text(settings: Settings, layouts: Mapping[str, Layout], preview: Preview) -> str:
    """Return what a real run would do: counts, the column of each input, reasons, the target."""
    statuses = preview.statuses
    mode = "PERMANENTLY erase" if settings.permanent else "deactivate"
    lines = [
        f"dry run: nothing was sent. A real run would {mode} {preview.valid} users on "
        f"{settings.target}.",
        f"  rows {preview.rows} in {len(layouts)} file(s): valid {preview.valid}, "
        f"invalid {statuses['invalid']}, duplicate {statuses['duplicate']}",
        *columns_text(layouts, preview),
    ]
    lines += [f"  invalid: {count:>7}  {reason}" for reason, count in preview.reasons.most_common()]
    return "\n".join(lines)


def confirmation_text(settings: Settings, layouts: Mapping[str, Layout], preview: Preview) -> str:
    """Return what a permanent run shows on a terminal before it asks for the count."""
    return "\n".join(
        [
            f"About to PERMANENTLY delete {preview.valid} users, with their messages and "
            f"conversations, on {settings.target}. This cannot be undone.",
            *columns_text(layouts, preview),
        ]
    )


def _preview(value: str) -> str:
    return value if len(value) <= _VALUE_PREVIEW else value[:_VALUE_PREVIEW] + "…"


def check_text(summary: CheckSummary) -> str:
    """Return what a person reads at the end of a read-back."""
    gone = summary.counts.get(ReadBack.GONE, 0)
    still = summary.counts.get(ReadBack.PRESENT, 0)
    unknown = summary.counts.get(ReadBack.UNKNOWN, 0)
    lines = [
        f"read-back {summary.check_id}: {gone} gone, {still} still returned by the API, "
        f"{unknown} without a usable answer, {summary.unchecked} not checked "
        f"({summary.requests} requests in {summary.duration:.1f} s)",
        "  'gone' means the API no longer returns the user (removed, or only deactivated).",
    ]
    if summary.present:
        lines.append("  still returned: " + ", ".join(summary.present[:20]))
    if summary.fatal_code:
        lines.append(f"  stopped because: {summary.fatal_code}")
    return "\n".join(lines)
