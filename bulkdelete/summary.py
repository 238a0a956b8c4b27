"""What a run did, as values: a delete run's ``Summary``, a read-back's ``CheckSummary``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bulkdelete.outcome import Outcome, ReadBack


def anchor_text(head: str | None, lines: int | None) -> str | None:
    """Return an audit's head as ``verify --expect-head`` takes it: ``HASH:LINES``."""
    return None if head is None or lines is None else f"{head}:{lines}"


class RunStatus(enum.StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    ABORTED = "aborted"  # a fatal API answer stopped it
    INTERRUPTED = "interrupted"  # a stop was requested (SIGINT/SIGTERM)
    # The audit could not be written mid-run (a full disk), so the run stopped sending. Never
    # in an audit's run_finished: the audit takes no more lines.
    AUDIT_FAILED = "audit_failed"


@dataclass(frozen=True, slots=True)
class Summary:
    """The totals of one run. ``counts`` holds the outcomes audited by this run only."""

    run_id: str
    audit_path: Path
    target: str
    permanent: bool
    status: RunStatus
    counts: Mapping[Outcome, int]
    requests: int
    duration: float
    fatal_code: str | None = None
    fatal_message: str | None = None
    retried_uids: int = 0
    skipped: int = 0  # rows an earlier run already settled (``--resume``)
    unsent: int = 0  # rows read but neither sent nor audited because the run stopped
    unanswered: int = 0  # UIDs sent whose answer the run stopped waiting for: fate unknown
    unread: int | None = 0  # input rows never read because the run stopped; None: not known
    failures_by_code: Mapping[str, int] = field(default_factory=dict)
    peak_rate: float = 0.0  # most requests sent in any one second, sampled every 0.25 s
    rate_limited: int = 0  # answers that were 429 Too Many Requests
    absent_confirmed: int = 0  # not-found UIDs of a permanent run that its bulk probe found absent
    # The audit's head once the run closed it: the link of its last line, and the lines it
    # holds (earlier runs' included). None when the audit could not be written to its end.
    head: str | None = None
    audit_lines: int | None = None

    @property
    def anchor(self) -> str | None:
        """Return ``HEAD:LINES``, what ``verify --expect-head`` takes; None without a head."""
        return anchor_text(self.head, self.audit_lines)

    @property
    def average_rate(self) -> float:
        """Requests per second over the whole run."""
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def not_found_unproven(self) -> int:
        """In a permanent run, UIDs answered not-found that its bulk probe did not find absent:
        they may be deactivated, not erased."""
        found = self.counts.get(Outcome.NOT_FOUND, 0)
        return found - self.absent_confirmed if self.permanent else 0

    @property
    def rows(self) -> int:
        """Input rows that got an audit line in this run."""
        return sum(self.counts.values())

    @property
    def read(self) -> int:
        """Input rows the run read: each was audited, skipped, left unsent or left unanswered."""
        return self.rows + self.skipped + self.unsent + self.unanswered

    @property
    def total(self) -> int | None:
        """The input's rows: those read and those never read.

        None when a stopped library run cannot know how many values its iterable had left.
        """
        return None if self.unread is None else self.read + self.unread

    @property
    def all_final(self) -> bool:
        """True when the run completed and no row failed or was invalid.

        A duplicate row shares the fate of the first row with its UID, so it does not count.
        """
        failed = self.counts.get(Outcome.FAILED, 0) + self.counts.get(Outcome.INVALID, 0)
        return self.status is RunStatus.COMPLETED and failed == 0


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """What a read-back found."""

    check_id: str
    counts: Mapping[ReadBack, int]
    requests: int
    duration: float
    present: tuple[str, ...]  # UIDs the API still returns (up to 1,000)
    unchecked: int  # UIDs not read back because the check stopped
    fatal_code: str | None = None
    head: str | None = None  # the audit's head once the read-back appended its lines
    audit_lines: int | None = None

    @property
    def anchor(self) -> str | None:
        """Return ``HEAD:LINES`` of the audit after the read-back; None without a head."""
        return anchor_text(self.head, self.audit_lines)

    @property
    def all_gone(self) -> bool:
        """True when every UID was read back and none is still returned."""
        return (
            self.fatal_code is None
            and self.unchecked == 0
            and self.counts.get(ReadBack.PRESENT, 0) == 0
            and self.counts.get(ReadBack.UNKNOWN, 0) == 0
        )
