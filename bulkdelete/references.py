"""Per request reference (``delete --ref-column``): its UIDs, what became of them, and whether
the request is complete.

A ``RefCollector`` is handed every record while ``report.build_report`` reads the audits: it
files each row line (and each ``sending`` line) under its ``ref``. ``references`` then joins
that to the report: each UID of a reference has its latest state across all the audits, as the
report decides it (a duplicate row shares its UID's fate; a UID sent with no outcome since is
``unknown``).

A reference is complete when nothing stands in the way, and otherwise says what does:

- a UID whose latest outcome is ``failed``, or whose fate is unknown;
- an ``invalid`` row (its value was never sent);
- a UID the latest read-back found still ``present``;
- a run that wrote lines of the reference and stopped with rows left (unsent, unanswered or
  never read, or killed), unless a later run in its audit continued it (``--resume`` or
  ``--restart``) and finished: the reference may have rows that were never read.

``not_found`` counts as done, as everywhere in bulkdelete (CometChat has no such user); in a
permanent run it may also mean deactivated, which ``not_found_in_permanent`` counts apart, but
for those the run's bulk probe confirmed absent.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from bulkdelete.outcome import Outcome
from bulkdelete.records import BatchSending, Location, Record, RowOutcome, RunStarted, Sending
from bulkdelete.report import Report, RunInfo
from bulkdelete.summary import RunStatus

UNKNOWN: Final = "unknown"  # the outcome of a UID sent with no outcome recorded since
COMPLETED: Final = RunStatus.COMPLETED.value


@dataclass(frozen=True, slots=True)
class RefUid:
    """One UID of a reference, with its latest state across all the audits."""

    uid: str  # as the audit names it: normalised, or its pseudonym
    outcome: str  # an Outcome's value, or "unknown"
    ts: str
    run_id: str
    error_code: str | None
    http_status: int | None
    permanent: bool
    note: str | None
    read_back: str | None  # the latest read-back's result, if any
    sources: tuple[str, ...]  # the reference's rows that name it (file:line)
    absent: bool = False  # last not found by a permanent run whose bulk probe confirmed it


@dataclass(frozen=True, slots=True)
class RefRow:
    """An invalid row of a reference: it was never sent."""

    source: str
    value: str
    reason: str | None
    run_id: str
    ts: str


@dataclass(frozen=True, slots=True)
class Reference:
    """What the audits say of one request reference."""

    ref: str
    uids: tuple[RefUid, ...]
    invalid: tuple[RefRow, ...]
    runs: tuple[str, ...]  # the runs that wrote its lines, in order
    first_ts: str
    last_ts: str
    problems: tuple[str, ...]  # why it is not complete: empty when it is

    @property
    def complete(self) -> bool:
        """True when every UID is deleted or not found, and nothing else stands in the way."""
        return not self.problems

    @property
    def counts(self) -> dict[str, int]:
        """UIDs by latest outcome, and the invalid rows."""
        found = Counter(uid.outcome for uid in self.uids)
        return {
            **{o.value: found[o.value] for o in Outcome if o.value not in {"invalid", "duplicate"}},
            UNKNOWN: found[UNKNOWN],
            "invalid": len(self.invalid),
        }

    @property
    def not_found_in_permanent(self) -> int:
        """UIDs a permanent run last found not found, unconfirmed: deactivated, perhaps, not
        erased."""
        return sum(
            u.outcome == Outcome.NOT_FOUND and u.permanent and not u.absent for u in self.uids
        )


@dataclass(slots=True)
class _Filed:
    uids: dict[str, list[str]] = field(default_factory=dict)  # uid -> sources, in order
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (run id, ts) sent
    invalid: list[RefRow] = field(default_factory=list)
    runs: dict[str, None] = field(default_factory=dict)  # an ordered set
    first_ts: str = ""
    last_ts: str = ""

    def saw(self, run_id: str, ts: str) -> None:
        self.runs.setdefault(run_id)
        self.first_ts = min(self.first_ts or ts, ts)
        self.last_ts = max(self.last_ts, ts)


@dataclass(slots=True)
class RefCollector:
    """Files row and sending lines under their reference; pass it to ``build_report``'s
    ``also``."""

    filed: dict[str, _Filed] = field(default_factory=dict)
    with_refs: set[str] = field(default_factory=set)  # runs that read a --ref-column
    unattributed: int = 0  # rows of such runs whose reference could not be read
    # per audit file, its delete runs in order: (run id, continues the one before)
    order: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)

    def __call__(self, path: str, _number: int, record: Record) -> None:
        if isinstance(record, RunStarted):
            continues = record.resumed or record.restart_of is not None
            self.order.setdefault(path, []).append((record.run_id, continues))
            if record.settings.ref_column is not None:
                self.with_refs.add(record.run_id)
        elif isinstance(record, Sending) and record.ref is not None:
            self._sending(record, record.ref)
        elif isinstance(record, BatchSending) and record.refs is not None:
            for sending in record.each():
                if sending.ref is not None:
                    self._sending(sending, sending.ref)
        elif isinstance(record, RowOutcome):
            if record.ref is None:
                self.unattributed += record.run_id in self.with_refs
            elif record.outcome is Outcome.INVALID:
                filed = self.filed.setdefault(record.ref, _Filed())
                filed.saw(record.run_id, record.ts)
                filed.invalid.append(
                    RefRow(str(record.source), record.uid, record.reason, record.run_id, record.ts)
                )
            elif record.normalised_uid is not None:
                self._file(
                    record.ref, record.run_id, record.ts, record.normalised_uid, record.source
                )

    def _sending(self, record: Sending, ref: str) -> None:
        """File a UID's request under its reference: sent, its fate unknown until its row."""
        self._file(ref, record.run_id, record.ts, record.normalised_uid, record.source)
        self.filed[ref].sent[record.normalised_uid] = (record.run_id, record.ts)

    def _file(self, ref: str, run_id: str, ts: str, uid: str, source: str) -> None:
        filed = self.filed.setdefault(ref, _Filed())
        filed.saw(run_id, ts)
        sources = filed.uids.setdefault(uid, [])
        if str(source) not in sources:
            sources.append(str(source))

    def left_unfinished(self, runs: Sequence[RunInfo]) -> set[str]:
        """Return the runs that stopped with rows left and that no later run in their audit
        continued to a finish."""
        info = {run.run_id: run for run in runs}
        left: set[str] = set()
        for order in self.order.values():
            pending: list[str] = []
            for run_id, continues in order:
                if not continues:
                    left.update(pending)  # a new job began: the stopped one stays unfinished
                    pending = []
                run = info.get(run_id)
                if run is None:
                    continue
                if run.status == COMPLETED:  # it read its input to the end: all settled
                    pending = []
                elif run.left != 0:  # rows left, or not known (killed)
                    pending.append(run_id)
            left.update(pending)
        return left


def references(report: Report, collected: RefCollector) -> tuple[Reference, ...]:
    """Return every reference the audits name, in the order first met, with its state."""
    unfinished = collected.left_unfinished(report.runs)
    unknown = set(report.unknown)
    return tuple(
        _reference(ref, filed, report, unknown, unfinished)
        for ref, filed in collected.filed.items()
    )


def _reference(
    ref: str, filed: _Filed, report: Report, unknown: set[str], unfinished: set[str]
) -> Reference:
    # In the input's order: lines are written in the order answers come back.
    uids = tuple(
        sorted(
            (
                _uid(uid, sources, report, unknown, filed.sent.get(uid, ("", "")))
                for uid, sources in filed.uids.items()
            ),
            key=lambda entry: _where(entry.sources[0]),
        )
    )
    counts = Counter(uid.outcome for uid in uids)
    problems = [
        f"{n} {'UID' if n == 1 else 'UIDs'} {what}"
        for n, what in (
            (counts[Outcome.FAILED.value], "failed"),
            (counts[UNKNOWN], "in unknown state (sent, no outcome recorded since)"),
            (sum(uid.read_back == "present" for uid in uids), "still returned at read-back"),
        )
        if n
    ]
    if filed.invalid:
        n = len(filed.invalid)
        problems.append(f"{n} invalid {'row' if n == 1 else 'rows'}, never sent")
    problems += [
        f"run {run_id} stopped before the end of its input, and no later run finished it: "
        "rows of this reference may be missing"
        for run_id in filed.runs
        if run_id in unfinished
    ]
    return Reference(
        ref=ref,
        uids=uids,
        invalid=tuple(filed.invalid),
        runs=tuple(filed.runs),
        first_ts=filed.first_ts,
        last_ts=filed.last_ts,
        problems=tuple(problems),
    )


def _where(source: str) -> tuple[str, int]:
    file, line = Location.parse(source).parts()
    return file, line or 0


def _uid(
    uid: str, sources: list[str], report: Report, unknown: set[str], sent: tuple[str, str]
) -> RefUid:
    read_back = report.read_back_of.get(uid)
    state = report.uids.get(uid)
    if state is None or uid in unknown:
        # No outcome since it was sent (the report clears a UID's unknown state at its outcome).
        run_id, ts = sent
        return RefUid(uid, UNKNOWN, ts, run_id, None, None, False, None, read_back, tuple(sources))
    return RefUid(
        uid=uid,
        outcome=state.outcome.value,
        ts=state.ts,
        run_id=state.run_id,
        error_code=state.error_code,
        http_status=state.http_status,
        permanent=state.permanent,
        note=state.note,
        read_back=read_back,
        sources=tuple(sources),
        absent=uid in report.absent,
    )


# --- text and JSON ----------------------------------------------------------------------------


def shown(ref: str) -> str:
    """Return a reference as a person reads it: as it is when plain, else quoted."""
    if not ref:
        return "(empty reference)"
    return ref if ref.isprintable() and ref.strip() == ref else repr(ref)


def reference_json(reference: Reference) -> dict[str, object]:
    """Return one reference as JSON-ready values: its state, its UIDs and its invalid rows."""
    return {
        "reference": reference.ref,
        "complete": reference.complete,
        "problems": list(reference.problems),
        "counts": reference.counts,
        "not_found_in_permanent": reference.not_found_in_permanent,
        "first_ts": reference.first_ts,
        "last_ts": reference.last_ts,
        "runs": list(reference.runs),
        "uids": [dataclasses.asdict(uid) for uid in reference.uids],
        "invalid_rows": [dataclasses.asdict(row) for row in reference.invalid],
    }


def run_json(run: RunInfo) -> dict[str, object]:
    """Return what a reader of a reference needs of one run: who ran it, when, on what."""
    return {
        "run_id": run.run_id,
        "status": run.status,
        "started": run.started,
        "finished": run.finished,
        "operator": dataclasses.asdict(run.operator) if run.operator else None,
        "target": run.target,
        "permanent": run.permanent,
        "audit": run.audit,
    }


def by_ref_json(refs: Sequence[Reference], report: Report, collected: RefCollector) -> str:
    """Return ``report --by-ref --json``: every reference, and the runs they name."""
    named = {run_id for reference in refs for run_id in reference.runs}
    document = {
        "references": [reference_json(reference) for reference in refs],
        "complete": sum(reference.complete for reference in refs),
        "rows_without_reference": collected.unattributed,
        "runs": [run_json(run) for run in report.runs if run.run_id in named],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def by_ref_text(refs: Sequence[Reference], report: Report, collected: RefCollector) -> str:
    """Return ``report --by-ref``: per reference its state, then each UID's outcome and time."""
    if not refs:
        return (
            "no row of these audits carries a request reference: "
            "run delete with --ref-column NAME\n"
        )
    runs = {run.run_id: run for run in report.runs}
    complete = sum(reference.complete for reference in refs)
    lines = [f"{len(refs)} references, {complete} complete"]
    if collected.unattributed:
        lines.append(
            f"{collected.unattributed} rows carry no readable reference (a line too long or "
            "malformed to read): no reference lists them"
        )
    for reference in refs:
        state = "complete" if reference.complete else "INCOMPLETE: " + "; ".join(reference.problems)
        who = ", ".join(
            f"run {run_id}" + (f" by {_operator(runs[run_id])}" if run_id in runs else "")
            for run_id in reference.runs
        )
        lines += ["", f"{shown(reference.ref)}: {state}", f"  {who}"]
        width = max((len(uid.uid) for uid in reference.uids), default=0)
        for uid in reference.uids:
            code = f" ({uid.error_code})" if uid.error_code else ""
            back = f", read back {uid.read_back}" if uid.read_back else ""
            lines.append(
                f"  {uid.uid:<{width}}  {uid.outcome}{code}{back}  {uid.ts or '-'}  "
                f"{', '.join(uid.sources)}"
            )
        lines += [
            f"  {row.value!r}  invalid ({row.reason}), never sent  {row.ts}  {row.source}"
            for row in reference.invalid
        ]
    return "\n".join(lines) + "\n"


def _operator(run: RunInfo) -> str:
    return f"{run.operator.user}@{run.operator.host}" if run.operator else "a library caller"
