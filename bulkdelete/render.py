"""Human-readable text for the end of a run and for a dry run.

Plain text that reads well in a terminal and in a CI log alike; machines read the audit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bulkdelete.outcome import Outcome
from bulkdelete.rows import InputSummary, Row
from bulkdelete.settings import Settings
from bulkdelete.summary import RunStatus, Summary

_STATUS_LINE = {
    RunStatus.COMPLETED: "finished",
    RunStatus.ABORTED: "ABORTED by a fatal API answer",
    RunStatus.INTERRUPTED: "interrupted",
}


def summary_text(summary: Summary, *, resume_command: str | None) -> str:
    """Return the end-of-run summary a person reads."""
    mode = "permanent erasure" if summary.permanent else "deactivation"
    rate = summary.requests / summary.duration if summary.duration > 0 else 0.0
    lines = [
        f"bulkdelete {_STATUS_LINE[summary.status]}: {summary.rows} rows in "
        f"{summary.duration:.1f} s ({mode}, {summary.target})",
    ]
    width = max(len(o.value) for o in Outcome)
    lines += [f"  {o.value:<{width}}  {summary.counts.get(o, 0):>9}" for o in Outcome]
    lines.append(
        f"  requests sent {summary.requests}, {rate:.1f}/s; "
        f"{summary.retried_uids} UIDs needed more than one attempt"
    )
    if summary.fatal_code or summary.fatal_message:
        lines.append(f"  stopped because: {summary.fatal_code}: {summary.fatal_message}")
    lines.append(f"  audit: {summary.audit_path}")
    if resume_command:
        lines.append(f"  to finish the job, run: {resume_command}")
    return "\n".join(lines)


def dry_run_text(settings: Settings, scanned: InputSummary, rows: Iterable[Row]) -> str:
    """Return what a real run would do: counts by status and invalid reason, and the target."""
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for row in rows:
        statuses[row.status] += 1
        if row.reason:
            reasons[row.reason] += 1
    mode = "PERMANENTLY erase" if settings.permanent else "deactivate"
    lines = [
        f"dry run: nothing was sent. A real run would {mode} {statuses['valid']} users on "
        f"{settings.target}.",
        f"  rows {scanned.rows} in {len(scanned.files)} file(s): valid {statuses['valid']}, "
        f"invalid {statuses['invalid']}, duplicate {statuses['duplicate']}",
    ]
    lines += [f"  invalid: {count:>7}  {reason}" for reason, count in reasons.most_common()]
    return "\n".join(lines)
