"""The counts of one run: what its rows came to, the requests it sent, the UIDs it retried.

The run keeps a ``Tally`` as it goes. ``snapshot`` is what the progress display is shown, and
``summary`` what the run returns. Every row read ends in exactly one of four places: audited
(``counts``), skipped (an earlier run settled it), unsent (read when the run stopped) or
unanswered (sent, its answer never came); ``Summary.read`` adds them up, so the summary names
every row.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Final, Protocol

from bulkdelete.outcome import Answer, Outcome, Result
from bulkdelete.progress import Snapshot
from bulkdelete.records import RunFinished
from bulkdelete.settings import Settings
from bulkdelete.summary import RunStatus, Summary

SAMPLES_PER_SECOND: Final = 4  # how often ``sample`` is called: the progress display's tick


class Gauges(Protocol):
    """What the pacer shows of itself at a moment (``pacing.Pacer`` is one)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def rate(self) -> float: ...

    @property
    def limit_per_minute(self) -> int | None: ...

    @property
    def budget_left(self) -> int | None: ...

    @property
    def expected_rate(self) -> float | None: ...

    @property
    def paused_for(self) -> float: ...


class Tally:
    """The counts of one run so far."""

    def __init__(self) -> None:
        self.counts: Counter[Outcome] = Counter()  # rows audited by this run, by outcome
        self.failures: Counter[str] = Counter()  # failed rows by error code (or HTTP status)
        self.requests = 0  # requests sent, aiohttp's own resends included
        self.retried = 0  # UIDs that took more than one attempt
        self.retrying = 0  # UIDs waiting between two attempts now
        self.skipped = 0  # rows an earlier run settled
        self.read = 0  # rows taken from the input; each ends audited, skipped, unsent or unanswered
        self.read_all = False  # the input ran out: no row was left unread
        self.unanswered = 0  # UIDs announced (``sending``) and not yet recorded
        self.absent = 0  # not-found UIDs of a permanent run that its bulk probe found absent
        self.peak_rate = 0.0  # most requests sent in any one second, as sampled
        self._recent: deque[int] = deque([0], maxlen=SAMPLES_PER_SECOND + 1)

    def settle(self, result: Result) -> None:
        """Count a row's audited outcome."""
        self.counts[result.outcome] += 1
        if result.outcome is Outcome.FAILED:
            self.failures[result.error_code or f"HTTP {result.http_status}"] += 1

    def sample(self) -> None:
        """Note the requests sent so far; called ``SAMPLES_PER_SECOND`` times a second."""
        recent = self._recent
        recent.append(self.requests)
        if len(recent) == recent.maxlen:
            self.peak_rate = max(self.peak_rate, float(recent[-1] - recent[0]))

    def snapshot(self, gauges: Gauges, *, total: int | None, elapsed: float) -> Snapshot:
        """Return the run's state now, for the progress display."""
        return Snapshot(
            done=self.counts.total(),
            total=total,
            skipped=self.skipped,
            counts={outcome.value: self.counts[outcome] for outcome in Outcome},
            in_flight=gauges.in_flight,
            retrying=self.retrying,
            rate_in_use=gauges.rate,
            limit_per_minute=gauges.limit_per_minute,
            budget_left=gauges.budget_left,
            expected_rate=gauges.expected_rate,
            paused_for=gauges.paused_for,
            elapsed=elapsed,
            requests=self.requests,
        )

    def summary(
        self,
        settings: Settings,
        *,
        run_id: str,
        status: RunStatus,
        fatal: Answer | None,
        duration: float,
        total: int | None,
        audit_failure: str | None = None,
        rate_limited: int = 0,
    ) -> Summary:
        """Return what the run did; ``total`` is the rows the input was expected to hold, and
        ``rate_limited`` the 429s the pacer saw."""
        audited = self.counts.total()
        if self.read_all:
            unread: int | None = 0
        elif total is not None:
            unread = max(total - self.read, 0)
        else:
            unread = None  # a library run stopped before the end of an iterable of unknown length
        return Summary(
            run_id=run_id,
            audit_path=settings.audit_path,
            target=settings.target,
            permanent=settings.permanent,
            status=RunStatus.AUDIT_FAILED if audit_failure else status,
            counts=dict(self.counts),
            requests=self.requests,
            duration=duration,
            fatal_code=fatal.error_code if fatal else None,
            fatal_message=audit_failure or (fatal.message if fatal else None),
            retried_uids=self.retried,
            skipped=self.skipped,
            # Whatever was read and is neither audited, skipped nor awaiting its answer was not
            # sent: queued, waiting for the pacer, or in the producer's hand when the run stopped.
            unsent=self.read - audited - self.skipped - self.unanswered,
            unanswered=self.unanswered,
            unread=unread,
            failures_by_code=dict(self.failures.most_common()),
            # A run shorter than a second sent all its requests within one second.
            peak_rate=self.peak_rate or float(self.requests),
            rate_limited=rate_limited,
            absent_confirmed=self.absent,
        )


def finish_record(summary: Summary, limit_per_minute: int | None) -> RunFinished:
    """Return a run's last audit line: its summary's totals, and the limit the server named."""
    return RunFinished(
        run_id=summary.run_id,
        status=summary.status,
        totals={outcome.value: summary.counts.get(outcome, 0) for outcome in Outcome},
        rows=summary.rows,
        skipped=summary.skipped,
        unsent=summary.unsent,
        unanswered=summary.unanswered,
        unread=summary.unread,
        total=summary.total,
        requests=summary.requests,
        duration_seconds=round(summary.duration, 3),
        fatal_code=summary.fatal_code,
        limit_per_minute=limit_per_minute,
    )
