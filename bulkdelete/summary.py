"""What one run did, as a value: the ``Summary`` the CLI reports and the library returns."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bulkdelete.outcome import Outcome


class RunStatus(enum.StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    ABORTED = "aborted"  # a fatal API answer stopped it
    INTERRUPTED = "interrupted"  # a stop was requested (SIGINT/SIGTERM)


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
    unsent: int = 0  # valid rows read but not sent because the run stopped

    @property
    def rows(self) -> int:
        """Input rows that got an audit line in this run."""
        return sum(self.counts.values())

    @property
    def all_final(self) -> bool:
        """True when the run completed and no row failed or was invalid.

        A duplicate row shares the fate of the first row with its UID, so it does not count.
        """
        failed = self.counts.get(Outcome.FAILED, 0) + self.counts.get(Outcome.INVALID, 0)
        return self.status is RunStatus.COMPLETED and failed == 0
