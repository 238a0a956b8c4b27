"""Read audits back: the latest state of every UID, and what each run did.

Records are read file by file in the order given, each top to bottom, and these rules apply:

- Latest wins: a UID's state is its last ``deleted``, ``not_found`` or ``failed`` record, in
  whichever run and file that is. A ``duplicate`` row shares the fate of its UID's first row, so
  it never changes a UID's state. One exception: a ``--restart`` (``restart_of`` in its
  ``run_started``) sends again what earlier runs deleted and gets ``not_found`` (or a failure)
  for it; that does not undo an earlier ``deleted`` of the same kind (permanent or not).
  ``invalid`` rows have no UID; they and duplicate rows are counted by source (``file:line``),
  the latest record for a source deciding.
- Unknown state: a ``sending`` line (or a ``batch_sending`` line naming a batch) is written
  before a UID's first request leaves, so a UID with one and no outcome after it was in flight
  when its run was killed, and nobody knows whether the server deleted it. Any later outcome
  for that UID clears this.
- Killed runs: a run with a ``run_started`` line and no ``run_finished`` was killed. Its totals
  come from its own row lines, its requests are the attempts of those rows, or in a batched run
  its ``batch_sending`` lines (either a lower bound), and
  its duration runs from its first line to its last.
- CometChat answers ``ERR_UID_NOT_FOUND`` for deactivated users too, so a UID not found by a
  permanent run may be deactivated, not erased: listed apart, unless probed (``deactivations``).

Unknown events and fields are ignored. A file with no ``run_started`` line, a line of a run
whose ``run_started`` was not read before it, or a row line lacking a field raises
``AuditError``. Records are streamed: memory grows with the number of UIDs, not of lines.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import orjson

from bulkdelete.audit import read_records
from bulkdelete.deactivations import Deactivations, deactivated_lines
from bulkdelete.errors import AuditError
from bulkdelete.outcome import ROW_ONLY_OUTCOMES, Outcome
from bulkdelete.records import (
    BatchSending,
    CheckFinished,
    CheckStarted,
    Input,
    InputRead,
    Operator,
    ReadBackResult,
    Record,
    RowOutcome,
    RunFinished,
    RunStarted,
    Sending,
)

TRANSPORT: Final = "TRANSPORT"  # a failure with neither
KILLED: Final = "killed"  # the status of a run with no ``run_finished`` line

_LISTED: Final = 20  # UIDs a text report lists before "… and N more"


@dataclass(frozen=True, slots=True)
class UidState:
    """The latest outcome of one UID and the record it came from."""

    uid: str  # normalised
    outcome: Outcome
    error_code: str | None
    http_status: int | None
    run_id: str
    ts: str
    permanent: bool
    note: str | None
    source: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run: ``status`` is its ``run_finished`` status, or ``"killed"`` when it has none.

    ``skipped`` to ``unread`` are what its ``run_finished`` says (None: killed, or written before
    they were recorded); ``operator`` and ``inputs`` are its manifest, and ``streams_read`` what
    it read of each stream.
    """

    run_id: str
    started: str
    finished: str | None
    status: str
    permanent: bool
    target: str
    requests: int
    duration_seconds: float
    totals: Mapping[str, int]  # outcome value -> rows this run audited
    fatal_code: str | None
    audit: str = ""  # the file it is in
    operator: Operator | None = None
    inputs: tuple[Input, ...] = ()
    streams_read: tuple[InputRead, ...] = ()
    resumed: bool = False
    restart_of: str | None = None
    skipped: int | None = None
    unsent: int | None = None
    unanswered: int | None = None
    unread: int | None = None

    @property
    def left(self) -> int | None:
        """Rows it read or could have read and did not settle (unsent, unanswered, unread);
        None when not known (a killed run)."""
        parts = (self.unsent, self.unanswered, self.unread)
        return None if self.status == KILLED or None in parts else sum(filter(None, parts))

    @property
    def rate(self) -> float:
        """Requests per second over the run, 0.0 for a run that took no measurable time."""
        return self.requests / self.duration_seconds if self.duration_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Report:
    """What a set of audits says happened, with the latest state of every UID."""

    runs: tuple[RunInfo, ...]
    uids: Mapping[str, UidState]
    invalid_rows: int
    duplicate_rows: int
    totals: Mapping[str, int]  # deleted/not_found/failed: UIDs; invalid/duplicate: rows
    failures_by_code: Mapping[str, int]  # failed UIDs by error code, most frequent first
    unknown: tuple[str, ...]  # sorted UIDs sent with no outcome after it
    not_found_in_permanent: tuple[str, ...]  # sorted UIDs last not found by a permanent run
    read_back: Mapping[str, int] = field(default_factory=dict)  # latest read-back per UID
    read_back_of: Mapping[str, str] = field(default_factory=dict)  # UID -> its latest read-back
    absent: frozenset[str] = frozenset()  # UIDs last not found by a permanent run, probed absent
    deactivated_by: Mapping[str, str] = field(default_factory=dict)  # UID -> the soft run


@dataclass(slots=True)
class _RunTally:
    path: str
    start: RunStarted
    last_ts: str
    counts: Counter[Outcome] = field(default_factory=Counter)
    attempts: int = 0
    batches: int = 0  # batch_sending lines: a batched run made at least one call for each
    streams: list[InputRead] = field(default_factory=list)
    finished: RunFinished | None = None

    @property
    def restart(self) -> bool:
        """The run started over (--restart) after the audit's earlier runs."""
        return bool(self.start.restart_of)


Reading = Callable[[str, int, Record], None]  # told every record read: (audit, line, record)


@dataclass(slots=True)
class _Reader:
    also: Sequence[Reading] = ()
    runs: dict[str, _RunTally] = field(default_factory=dict)
    uids: dict[str, UidState] = field(default_factory=dict)
    row_kinds: dict[str, Outcome] = field(default_factory=dict)  # source -> invalid/duplicate
    unknown: set[str] = field(default_factory=set)
    read_back: dict[str, str] = field(default_factory=dict)  # uid -> gone/present/unknown

    def read(self, path: Path) -> None:
        started_here = False
        for number, record in read_records(path):
            started_here |= isinstance(record, RunStarted)
            self._record(str(path), number, record)
            for reading in self.also:
                reading(str(path), number, record)
        if not started_here:
            raise AuditError("not a bulkdelete audit: no run_started line", path=str(path))

    def _record(self, path: str, number: int, record: Record) -> None:
        if isinstance(record, ReadBackResult):  # a read-back (bulkdelete check) is no delete run
            self.read_back[record.normalised_uid] = record.result.value
            return
        if isinstance(record, CheckStarted | CheckFinished) or record.run_id is None:
            return  # a read-back's frame, or an event of a later version without a run
        if isinstance(record, RunStarted):
            self.runs[record.run_id] = _RunTally(path, record, record.ts)
            return
        tally = self.runs.get(record.run_id)
        if tally is None:
            message = (
                f"not a bulkdelete audit: run {record.run_id!r} has no run_started line before"
            )
            raise AuditError(message, path=path, line=number)
        if record.ts is not None:
            tally.last_ts = max(tally.last_ts, record.ts)
        if isinstance(record, RunFinished):
            tally.finished = record
        elif isinstance(record, InputRead):
            tally.streams.append(record)
        elif isinstance(record, Sending):
            self.unknown.add(record.normalised_uid)
        elif isinstance(record, BatchSending):
            self.unknown.update(record.normalised_uids)
            tally.batches += 1
        elif isinstance(record, RowOutcome):
            self._row(tally, record, path, number)

    def _row(self, tally: _RunTally, row: RowOutcome, path: str, number: int) -> None:
        outcome, source = row.outcome, str(row.source)
        tally.counts[outcome] += 1
        tally.attempts += row.attempts
        if outcome in ROW_ONLY_OUTCOMES:
            self.row_kinds[source] = outcome
            return
        self.row_kinds.pop(source, None)
        uid = row.normalised_uid
        if uid is None:
            raise AuditError(f"a {outcome} line names no normalised_uid", path=path, line=number)
        self.unknown.discard(uid)
        earlier = self.uids.get(uid)
        if (
            tally.restart
            and outcome is not Outcome.DELETED
            and earlier is not None
            and earlier.outcome is Outcome.DELETED
            and earlier.permanent == row.permanent
        ):
            return  # the restart found gone, or failed to reach, a user an earlier run deleted
        self.uids[uid] = UidState(
            uid=uid,
            outcome=outcome,
            error_code=row.error_code,
            http_status=row.http_status,
            run_id=row.run_id,
            ts=row.ts,
            permanent=row.permanent,
            note=row.note,
            source=source,
        )


def build_report(paths: Sequence[Path], *, also: Sequence[Reading] = ()) -> Report:
    """Read the audits at ``paths``, in order, and return what they say happened.

    Each of ``also`` is told every record as it is read, so that another view of the audits
    (per reference, say) needs no second reading. Raises ``AuditError`` for an unreadable file,
    a line that is not JSON (its number given), or a file that is not a bulkdelete audit.
    """
    reader = _Reader((*also, deactivations := Deactivations()))
    for path in paths:
        reader.read(path)
    states = reader.uids.values()
    absent, unproven, deactivated_by = deactivations.settle(reader.uids)
    rows = Counter(reader.row_kinds.values())
    latest = Counter(state.outcome for state in states)
    failures = Counter(_failure_code(s) for s in states if s.outcome is Outcome.FAILED)
    return Report(
        runs=tuple(_run_info(run_id, tally) for run_id, tally in reader.runs.items()),
        uids=reader.uids,
        invalid_rows=rows[Outcome.INVALID],
        duplicate_rows=rows[Outcome.DUPLICATE],
        totals={o.value: (rows if o in ROW_ONLY_OUTCOMES else latest)[o] for o in Outcome},
        failures_by_code=dict(sorted(failures.items(), key=lambda item: (-item[1], item[0]))),
        unknown=tuple(sorted(reader.unknown)),
        not_found_in_permanent=unproven,
        read_back=dict(Counter(reader.read_back.values())),
        read_back_of=reader.read_back,
        absent=absent,
        deactivated_by=deactivated_by,
    )


def _failure_code(state: UidState) -> str:
    if state.error_code is not None:
        return state.error_code
    # Named as the run's summary names it, so both group the same failures the same way.
    return f"HTTP {state.http_status}" if state.http_status is not None else TRANSPORT


def _run_info(run_id: str, tally: _RunTally) -> RunInfo:
    start, end = tally.start, tally.finished
    run = functools.partial(
        RunInfo,
        run_id=run_id,
        started=start.ts,
        permanent=start.settings.permanent,
        target=start.settings.target or start.settings.base_url,
        audit=tally.path,
        operator=start.operator,
        inputs=start.inputs or (),
        streams_read=tuple(tally.streams),
        resumed=start.resumed,
        restart_of=start.restart_of,
    )
    if end is not None:
        return run(
            finished=end.ts,
            status=end.status.value,
            requests=end.requests,
            duration_seconds=end.duration_seconds,
            totals=end.totals,
            fatal_code=end.fatal_code,
            skipped=end.skipped,
            unsent=end.unsent,
            unanswered=end.unanswered,
            unread=end.unread,
        )
    try:
        duration = datetime.fromisoformat(tally.last_ts) - datetime.fromisoformat(start.ts)
    except ValueError as exc:
        raise AuditError(f"run {run_id!r}: bad timestamp ({exc})", path=tally.path) from exc
    return run(
        finished=None,
        status=KILLED,
        # A batch's rows share its calls: its intent lines count them (a lower bound too).
        requests=tally.batches or tally.attempts,
        duration_seconds=round(duration.total_seconds(), 3),
        totals={o.value: tally.counts[o] for o in Outcome},
        fatal_code=None,
    )


def report_text(report: Report) -> str:
    """Return the report a person reads: runs, totals, failures, and UIDs that need a look."""
    lines = [f"{len(report.runs)} runs, {len(report.uids)} UIDs with an outcome", ""]
    header = ("run id", "status", "started", "duration", "requests", "rate/s", "permanent")
    table = [header] + [
        (
            run.run_id,
            f"{run.status} ({run.fatal_code})" if run.fatal_code else run.status,
            run.started,
            f"{run.duration_seconds:.1f} s",
            str(run.requests),
            f"{run.rate:.1f}",
            "yes" if run.permanent else "no",
        )
        for run in report.runs
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    labels = {
        o.value: o.value if o not in ROW_ONLY_OUTCOMES else f"{o.value} rows" for o in Outcome
    }
    counts = [(labels[key], count) for key, count in report.totals.items()]
    counts.append(("unknown state", len(report.unknown)))
    lines += ["", "latest outcome per UID:"]
    lines += [f"  {label:<16}{count:>9}" for label, count in counts]
    if report.read_back:
        found = " · ".join(f"{result} {n}" for result, n in sorted(report.read_back.items()))
        lines += ["", f"read back (bulkdelete check, latest per UID): {found}"]
    if report.failures_by_code:
        lines += ["", "failed UIDs by error code:"]
        lines += [f"  {code:<32}{count:>9}" for code, count in report.failures_by_code.items()]
    if report.unknown:
        lines += [
            "",
            f"{len(report.unknown)} UIDs in unknown state (sent when a run was killed or stopped"
            " waiting, no outcome since; a run with --resume settles them):",
            *_listing(report.unknown),
        ]
    if report.not_found_in_permanent:
        lines += [
            "",
            f"WARNING: {len(report.not_found_in_permanent)} UIDs were not found by a permanent"
            " run. CometChat answers not-found for deactivated users too, so these may have been"
            " deactivated, not erased:",
            *_listing(report.not_found_in_permanent),
        ]
    lines += deactivated_lines(len(report.absent), report.deactivated_by)
    return "\n".join(lines) + "\n"


def _listing(uids: Sequence[str]) -> list[str]:
    shown = [f"  {uid}" for uid in uids[:_LISTED]]
    if len(uids) > _LISTED:
        shown.append(f"  … and {len(uids) - _LISTED} more")
    return shown


def report_json(report: Report) -> str:
    """Return the report as one JSON document with sorted keys; every unknown UID is listed."""
    document = {
        "runs": [{**dataclasses.asdict(run), "rate": round(run.rate, 3)} for run in report.runs],
        "uids_with_outcome": len(report.uids),
        "totals": report.totals,
        "invalid_rows": report.invalid_rows,
        "duplicate_rows": report.duplicate_rows,
        "failures_by_code": report.failures_by_code,
        "unknown": report.unknown,
        "not_found_in_permanent": report.not_found_in_permanent,
        "absent_confirmed": len(report.absent),
        "deactivated_by": report.deactivated_by,
        "read_back": report.read_back,
    }
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()
