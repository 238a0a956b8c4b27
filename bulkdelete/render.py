"""Human-readable text for the end of a run and for a dry run.

Plain text that reads well in a terminal and in a CI log alike; machines read the audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import orjson

from bulkdelete.columns import Layout
from bulkdelete.outcome import Outcome, ReadBack
from bulkdelete.rows import InputSummary
from bulkdelete.settings import Settings
from bulkdelete.summary import CheckSummary, RunStatus, Summary
from bulkdelete.survey import Survey

# Written down (a ticket, an e-mail), the head shows later that the audit was not cut or edited.
_HEAD_LINE: Final = "head (for verify --expect-head): "
_STATUS_LINE = {
    RunStatus.COMPLETED: "finished",
    RunStatus.ABORTED: "ABORTED",  # the "stopped because" line says by what
    RunStatus.INTERRUPTED: "interrupted",
    RunStatus.AUDIT_FAILED: "STOPPED: the audit could not be written",
}


def summary_text(summary: Summary, *, resume_command: str | None) -> str:
    """Return the end-of-run summary a person reads."""
    mode = "PERMANENT erasure" if summary.permanent else "deactivation"
    # The lines below add up to the headline's rows: every input row is on exactly one of them.
    rows = f"{summary.read}+" if summary.total is None else str(summary.total)
    lines = [
        f"bulkdelete {_STATUS_LINE[summary.status]}: {rows} rows in "
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
    if summary.unread is None:
        lines.append(f"  {'unread':<{width}}  {'?':>9}  (the run stopped before the input's end)")
    elif summary.unread:
        lines.append(
            f"  {'unread':<{width}}  {summary.unread:>9}  (never read: the run stopped first)"
        )
    lines += [f"  failed with {code}: {n}" for code, n in summary.failures_by_code.items()]
    lines.append(
        f"  {summary.requests} requests, {summary.average_rate:.1f}/s on average, "
        f"{summary.peak_rate:.0f}/s at peak; {summary.retried_uids} "
        + ("UID needed retries" if summary.retried_uids == 1 else "UIDs needed retries")
        + (
            f"; {summary.rate_limited} "
            + ("answer was 429" if summary.rate_limited == 1 else "answers were 429")
            if summary.rate_limited
            else ""
        )
    )
    if summary.not_found_unproven:
        lines.append(
            f"  note: {summary.not_found_unproven} UIDs were not found. CometChat says so for "
            "deactivated users too, so these may be deactivated, not erased (see docs/auditors.md)."
        )
    if summary.absent_confirmed:
        lines.append(
            f"  note: {summary.absent_confirmed} UIDs were not found, and the bulk probe "
            "confirmed each absent (not a deactivated user)."
        )
    if summary.fatal_code or summary.fatal_message:
        reason = ": ".join(part for part in (summary.fatal_code, summary.fatal_message) if part)
        lines.append(f"  stopped because: {reason}")
    if summary.status is RunStatus.AUDIT_FAILED:
        lines.append(
            "  the audit may lack the outcomes of the last requests: once it can be written "
            "again, `bulkdelete report` names those UIDs (unknown state) and --resume settles them"
        )
    lines.append(f"  audit: {summary.audit_path}")
    if summary.anchor:
        lines.append(f"  {_HEAD_LINE}{summary.anchor}")
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
            "audit_head": summary.head,
            "audit_lines": summary.audit_lines,
            "total": summary.total,
            "rows": summary.rows,
            "outcomes": {o.value: summary.counts.get(o, 0) for o in Outcome},
            "skipped": summary.skipped,
            "unsent": summary.unsent,
            "unanswered": summary.unanswered,
            "unread": summary.unread,
            "failures_by_code": dict(summary.failures_by_code),
            "requests": summary.requests,
            "duration_seconds": round(summary.duration, 3),
            "average_rate": round(summary.average_rate, 3),
            "peak_rate": round(summary.peak_rate, 3),
            "retried_uids": summary.retried_uids,
            "rate_limited": summary.rate_limited,
            "not_found_in_permanent_run": summary.not_found_unproven,
            "absent_confirmed": summary.absent_confirmed,
            "fatal_code": summary.fatal_code,
            "fatal_message": summary.fatal_message,
            "all_final": summary.all_final,
            "resume_command": resume_command,
        },
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )


_VALUE_PREVIEW: Final = 40


def columns_text(layouts: Mapping[str, Layout], found: Survey) -> list[str]:
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
        if layout.ref_column is not None:
            where += f", references from {layout.ref_column!r}"
        values = found.first_values.get(name, [])
        shown = ", ".join(repr(_preview(value)) for value in values) or "none"
        lines.append(f"  {name}: {where}; first values {shown}")
    return lines


def dry_run_text(
    settings: Settings,
    layouts: Mapping[str, Layout],
    found: Survey,
    *,
    invalid_out: Path | None = None,
) -> str:
    """Return what a real run would do: counts, the column of each input, reasons, the target."""
    mode = "PERMANENTLY erase" if settings.permanent else "deactivate"
    lines = [
        f"dry run: nothing was sent. A real run would {mode} {found.valid} users on "
        f"{settings.target}.",
        f"  rows {found.rows} in {len(layouts)} file(s): valid {found.valid}, "
        f"invalid {found.invalid}, duplicate {found.duplicate}",
        *columns_text(layouts, found),
    ]
    lines += [f"  invalid: {count:>7}  {reason}" for reason, count in found.reasons.items()]
    if invalid_out is not None:
        lines.append(f"  invalid rows by line (file, line, value, reason): {invalid_out}")
    return "\n".join(lines)


def dry_run_json(
    settings: Settings, layouts: Mapping[str, Layout], scanned: InputSummary, found: Survey
) -> bytes:
    """Return the dry run's facts for machines: what a real run would read and send."""
    files = {f.name: f for f in scanned.files}
    inputs = []
    for name, layout in layouts.items():
        described: dict[str, object] = {
            "name": name,
            "column": layout.column,
            "ref_column": layout.ref_column,
        }
        if (scan := files.get(name)) is not None:
            described |= {"rows": scan.rows, "sha256": scan.sha256, "bytes": scan.byte_size}
        inputs.append(described)
    return orjson.dumps(
        {
            "status": "dry_run",
            "permanent": settings.permanent,
            "target": settings.target,
            "total": found.rows,
            "valid": found.valid,
            "invalid": found.invalid,
            "duplicate": found.duplicate,
            "invalid_by_reason": dict(found.reasons),
            "inputs": inputs,
        },
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )


def confirmation_text(settings: Settings, layouts: Mapping[str, Layout], found: Survey) -> str:
    """Return what a permanent run shows on a terminal before it asks for the count."""
    return "\n".join(
        [
            f"About to PERMANENTLY delete {found.valid} users, with their messages and "
            f"conversations, on {settings.target}. This cannot be undone.",
            *columns_text(layouts, found),
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
    if summary.anchor:  # the read-back appended to the audit: its head moved
        lines.append(f"  {_HEAD_LINE}{summary.anchor}")
    return "\n".join(lines)
