"""Everything a reviewer's view of audits needs, read once: the report, the references, and
``verify``'s verdict with each audit's head.

``report --html``, ``--by-ref`` and ``--receipts`` all start from a ``Review``: the audits are
read once for the report and the references together, and once more by ``verify`` (which
re-hashes every line as it is on disk, so that what the page says of the chain is what
``bulkdelete verify`` would say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bulkdelete import evidence
from bulkdelete.references import RefCollector, Reference, references
from bulkdelete.report import Report, RunInfo, build_report
from bulkdelete.verification import Verification


@dataclass(frozen=True, slots=True)
class Review:
    """The audits as a reviewer sees them."""

    paths: tuple[str, ...]
    report: Report
    refs: tuple[Reference, ...]
    collected: RefCollector
    verification: Verification | None  # None: not verified (the text reports need no verdict)

    @property
    def unfinished(self) -> tuple[RunInfo, ...]:
        """The runs that stopped with rows left and that no later run continued to a finish."""
        left = self.collected.left_unfinished(self.report.runs)
        return tuple(run for run in self.report.runs if run.run_id in left)

    @property
    def never_attempted(self) -> tuple[int, bool]:
        """Return the rows those runs never sent (unsent and unread), and whether more may be
        (a killed run cannot say)."""
        runs = self.unfinished
        count = sum((run.unsent or 0) + (run.unread or 0) for run in runs)
        return count, any(run.unread is None or run.unsent is None for run in runs)


def gather(
    paths: Sequence[Path],
    *,
    verify: bool,
    inputs: Sequence[Path] = (),
    key: bytes | None = None,
) -> Review:
    """Read the audits at ``paths``; with ``verify``, check them as ``bulkdelete verify`` does
    (against ``inputs``, with the audit ``key``).

    Raises ``AuditError`` as ``build_report`` does.
    """
    collected = RefCollector()
    report = build_report(paths, also=(collected,))
    verification = evidence.verify(paths, inputs=inputs, key=key) if verify else None
    return Review(
        paths=tuple(str(path) for path in paths),
        report=report,
        refs=references(report, collected),
        collected=collected,
        verification=verification,
    )
