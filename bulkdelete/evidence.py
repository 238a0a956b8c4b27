"""Check audits as evidence: the hash chain, each run's manifest, one final outcome per row.

``verify`` hashes every audit line exactly as it is on disk. In each file, on its own: the first
line's ``prev`` is null and every other line's ``prev`` is the link (``audit.link``) of the line
before it. A line belongs to the run of the latest ``run_started`` at or before it and is linked
with that run's ``audit_chain``: SHA-256, or HMAC-SHA256 with the audit key. Once a run in a
file is keyed, every later run in it must be too: anyone can append an unkeyed run, so one after
a keyed run is a downgrade, not evidence. A ``run_finished`` line must count its run's outcome
lines. An unterminated last line is the torn tail of a kill: it is noted, not checked (the next
run cuts it off).

Given the input files, every run's manifest must list exactly these files (see ``manifests``),
and every input row must be settled by exactly one audit line (see ``ledger``).

A file's head is the link of its last line. Each line holds the link of the one before, so the
head commits to the whole file: an auditor who writes it down can later show that nothing was
changed, cut or appended since, even where anyone could recompute an unkeyed chain.
"""

from __future__ import annotations

import collections
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bulkdelete.audit import Pseudonyms, link
from bulkdelete.ledger import Ledger
from bulkdelete.manifests import Given, Read
from bulkdelete.outcome import ROW_ONLY_OUTCOMES, Outcome
from bulkdelete.records import (
    DEFAULT_CHAIN,
    CheckFinished,
    CheckStarted,
    InputRead,
    NotJsonError,
    ReadBackResult,
    Record,
    RecordError,
    RowOutcome,
    RunFinished,
    RunStarted,
    Start,
    decode_linked,
)
from bulkdelete.rows import Source, read_rows
from bulkdelete.settings import KEYED_CHAIN
from bulkdelete.verification import Finding, Head, Verification

_CHAINS: Final = frozenset({DEFAULT_CHAIN, KEYED_CHAIN})
_MAX_FINDINGS: Final = 20  # beyond these, problems are counted, not listed
_RECENT: Final = 64  # earlier lines searched to tell where a misplaced line's prev points
_BITS: Final = 40  # a line reference packs (file index, line) in one int: memory per UID
_MASK: Final = (1 << _BITS) - 1
_Recent = collections.deque[tuple[int, bytes]]  # (line number, bytes) of the lines just read


@dataclass(slots=True)
class _Run:
    run_id: str
    line: int
    key: bytes | None
    checkable: bool  # False for a keyed chain when no key was given
    inputs: list[Read]
    column: str | None
    check: bool = False  # a read-back (check_started ... check_finished), not a delete run
    uid_hash: bool = False  # the run named UIDs by HMAC pseudonyms
    no_header: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    finished: int | None = None
    # Invalid and duplicate rows, (input name, line, line ref, outcome, source), until the
    # run's inputs are matched to the given files at its end.
    rows: list[tuple[str, int, int, Outcome, str]] = field(default_factory=list)
    paths: list[str] | None = None  # the given file each input is, once matched


def verify(
    audits: Sequence[Path], *, inputs: Sequence[Path] = (), key: bytes | None = None
) -> Verification:
    """Check ``audits`` and, given ``inputs`` (the files the runs read), their manifests and rows.

    ``key`` verifies runs whose chain is keyed (``audit_chain: hmac-sha256``). Streams every
    file; memory grows with the number of UIDs, not of lines. Never raises for what it finds:
    an unreadable file is a finding too.
    """
    check = _Checker([str(path) for path in audits], key)
    if inputs:
        check.give(inputs)
    else:
        check.notes.append("no input files given: manifests and row outcomes were not checked")
    for index, path in enumerate(audits):
        check.file(index, path)
    rows = check.rows()
    if key is not None and check.runs and not check.keyed_runs:
        check.notes.append("an audit key was given, but no run's chain is keyed")
    if check.unlisted:
        check.notes.append(f"{check.unlisted} more problems were found and not listed")
    return Verification(
        ok=not check.findings,
        findings=tuple(check.findings),
        lines=check.lines,
        runs=check.runs,
        head=check.heads[-1].hash if check.heads else None,
        rows_checked=rows,
        notes=tuple(check.notes),
        heads=tuple(check.heads),
    )


class _Checker:
    def __init__(self, audits: list[str], key: bytes | None) -> None:
        self.audits, self.key, self.index = audits, key, 0
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.unlisted = self.lines = self.runs = self.keyed_runs = self.orphans_seen = 0
        self.heads: list[Head] = []
        self.last_keyed: tuple[str, int] | None = None  # (run id, line) in the current file
        self.started: dict[str, int] = {}  # run id -> its run_started line
        self.first_run: _Run | None = None
        self.ledger = Ledger(self)
        self.given: Given | None = None  # None: no input files given, none checked
        self.manifests_match = True

    def find(self, path: str, line: int | None, problem: str) -> None:
        if len(self.findings) < _MAX_FINDINGS:
            self.findings.append(Finding(path, line, problem))
        else:
            self.unlisted += 1

    def at(self, ref: int, problem: str) -> None:
        self.find(self.audits[ref >> _BITS], ref & _MASK, problem)

    def where(self, ref: int) -> str:
        line = ref & _MASK
        return str(line) if len(self.audits) == 1 else f"{self.audits[ref >> _BITS]}:{line}"

    def give(self, paths: Sequence[Path]) -> None:
        self.given = Given()
        for path in paths:
            if (error := self.given.add(path)) is not None:
                self.find(str(path), None, error)
                self.manifests_match = False

    def file(self, index: int, path: Path) -> None:
        self.index, name, number = index, str(path), 0
        self.last_keyed = None  # each file has its own chain
        run: _Run | None = None
        previous: bytes | None = None
        recent: _Recent = collections.deque(maxlen=_RECENT)
        try:
            with path.open("rb") as handle:
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        self.notes.append(
                            f"{name}:{number + 1} is cut short: a kill's torn tail, "
                            "not checked (the next run cuts it off)"
                        )
                        break
                    number += 1
                    ref, line = index << _BITS | number, raw[:-1]
                    run = self.line(ref, line, run, previous, recent)
                    previous = line
                    recent.append((number, line))
        except OSError as exc:
            self.find(name, None, f"cannot read the audit: {exc.strerror or exc}")
        self.lines += number
        if number == 0:
            self.find(name, None, "holds no complete line: not a bulkdelete audit")
        self.end(run)
        key, checkable = (run.key, run.checkable) if run else (self.key, True)
        head = None if previous is None or not checkable else link(previous, key)
        self.heads.append(Head(name, head, number))

    def line(
        self, ref: int, line: bytes, run: _Run | None, previous: bytes | None, recent: _Recent
    ) -> _Run | None:
        """Check one complete line; return the run that the next line belongs to."""
        try:
            record, prev = decode_linked(line)
        except NotJsonError:
            self.at(ref, "not a JSON object: the line was edited or damaged")
            return run
        except RecordError as exc:
            self.at(ref, f"not a bulkdelete audit line ({exc})")
            return run
        if isinstance(record, RunStarted | CheckStarted):
            self.end(run)
            run = self.start(ref, record)
        key, checkable = (run.key, run.checkable) if run else (self.key, True)
        expected = None if previous is None else link(previous, key)
        if checkable and prev != expected:
            self.broken(ref, prev, previous is None, key, recent)
        self.record(ref, record, run)
        return run

    def broken(
        self, ref: int, prev: object, first: bool, key: bytes | None, recent: _Recent
    ) -> None:
        if len(self.findings) >= _MAX_FINDINGS:  # it would not be listed: spare the search
            self.unlisted += 1
            return
        before = (ref & _MASK) - 1
        if first:
            problem = "a file's first line must have prev null: lines before it were removed"
        elif prev is None:
            problem = "prev is null, as only a file's first line has: lines were put before it"
        elif earlier := next((n for n, body in recent if link(body, key) == prev), None):
            problem = (
                f"prev links to line {earlier}, not to line {before} just before it: "
                "a line was duplicated or moved here, or lines were removed"
            )
        else:
            problem = (
                f"prev does not match line {before}: that line was edited, or a line "
                "was removed, duplicated or moved here"
            )
        keyed = " (or the audit key is not the one this run used)" if key and not first else ""
        self.at(ref, problem + keyed)

    def start(self, ref: int, record: Start) -> _Run:
        run_id, settings, chain = record.run_id, record.settings, record.settings.audit_chain
        keyed = chain == KEYED_CHAIN
        self.runs, self.keyed_runs = self.runs + 1, self.keyed_runs + keyed
        if chain not in _CHAINS:
            self.at(ref, f"run {run_id} has an unknown audit_chain {chain!r}")
        elif keyed and self.key is None:
            self.at(ref, f"run {run_id}'s chain is keyed: set BULKDELETE_AUDIT_KEY to verify it")
        elif not keyed and self.last_keyed is not None:
            keyed_id, keyed_line = self.last_keyed
            self.at(
                ref,
                f"run {run_id}'s chain is unkeyed, but run {keyed_id} at line {keyed_line} "
                "before it was keyed: a run after a keyed run dropped the key, so anyone "
                "could have appended it",
            )
        if keyed:
            self.last_keyed = run_id, ref & _MASK
        if (first := self.started.setdefault(run_id, ref)) != ref:
            self.at(
                ref,
                f"run {run_id} already started at {self.audits[first >> _BITS]}:"
                f"{first & _MASK}: a copied line, or an audit given twice",
            )
        read = [Read.of(f) for f in record.inputs or ()] if isinstance(record, RunStarted) else []
        key = self.key if keyed else None
        checkable = chain in _CHAINS and (key is not None or not keyed)
        run = _Run(
            run_id, ref & _MASK, key, checkable, read, settings.column,
            check=isinstance(record, CheckStarted), uid_hash=settings.uid_hash,
            no_header=settings.no_header,
        )  # fmt: skip
        if isinstance(record, RunStarted):  # a read-back reads no input: no manifest to compare
            self.attempt(ref, record)
            self.first_run = self.first_run or run
        return run

    def attempt(self, ref: int, record: RunStarted) -> None:
        """Begin a new attempt at this run unless it resumes one begun earlier in its file."""
        attempts = self.ledger.attempts
        if record.resumed and attempts and attempts[-1] >> _BITS == self.index:
            return
        self.ledger.begin_attempt(ref, restart=record.restart_of is not None)
        if restarted := record.restart_of:
            self.notes.append(
                f"{self.audits[self.index]}:{ref & _MASK}: run {record.run_id} starts over "
                f"(--restart) after run {restarted}: a row settled before it and again by it "
                "counts once"
            )

    def end(self, run: _Run | None) -> None:
        if run is None:
            return
        if run.finished is None:
            last = "check_finished" if run.check else "run_finished"
            self.notes.append(
                f"{self.audits[self.index]}:{run.line}: run {run.run_id} has no "
                f"{last} line: it was killed (or its last lines removed)"
            )
        if not run.check and self.given is not None:
            self.match_inputs(run, self.given)

    def match_inputs(self, run: _Run, given: Given) -> None:
        """Match each input of the run's manifest to a given file; file the run's rows by it."""
        match = given.match(run.inputs)
        if match.guessed is not None:
            self.notes.append(
                f"{self.audits[self.index]}:{run.line}: run {run.run_id} was killed before "
                f"it said what it read of {run.inputs[match.guessed].name}: matched to "
                f"{match.paths[match.guessed]} by its rows alone"
            )
        if not match.exact:
            self.manifests_match = False
            files = ", ".join(f"{p} (sha256 {sha[:12]}…)" for p, sha in given.hashes.items())
            its = ", ".join(str(read) for read in run.inputs) or "nothing"
            problem = f"input {files} is not what this run read: {its}"
            self.find(self.audits[self.index], run.line, problem)
            return
        run.paths = [path for path in match.paths if path is not None]
        by_name = {read.name: path for read, path in zip(run.inputs, run.paths, strict=True)}
        for name, line, ref, outcome, source in run.rows:
            self.ledger.row_line(by_name[name], line, ref, outcome, source)

    def input_read(self, ref: int, record: InputRead, run: _Run) -> None:
        """Take a stream's hash, size and completeness from its ``input_read`` line."""
        read = next((r for r in run.inputs if r.streamed and r.name == record.name), None)
        if read is None or read.sha256 is not None:
            self.at(ref, f"input_read names {record.name!r}, which this run did not stream")
            return
        read.take(record)

    def record(self, ref: int, record: Record, run: _Run | None) -> None:
        run_id = record.run_id
        if run is None:
            if self.orphans_seen < self.index + 1:  # one finding for the file, not every line
                self.orphans_seen = self.index + 1
                self.at(ref, "comes before any run_started line, like any line up to the next one")
        elif run_id != run.run_id:
            self.at(ref, f"a line of run {run_id} inside run {run.run_id} (line {run.line} on)")
        elif isinstance(record, RunStarted | CheckStarted):
            return
        elif run.finished is not None:
            self.at(ref, f"comes after its run's last line {run.finished}")
        elif run.check:
            self.read_back(ref, record, run)
        elif isinstance(record, RunFinished):
            self.finish(ref, record, run)
        elif isinstance(record, InputRead):
            self.input_read(ref, record, run)
        elif isinstance(record, RowOutcome):
            run.outcomes[record.outcome.value] += 1
            if self.given is not None:
                self.tally(ref, record, run)

    def finish(self, ref: int, record: RunFinished, run: _Run) -> None:
        run.finished, counted = ref & _MASK, run.outcomes.total()
        totals = {k: v for k, v in record.totals.items() if v}
        if record.rows != counted:
            self.at(
                ref,
                f"run_finished says {record.rows} rows, the run has "
                f"{counted} outcome lines: a line was removed or added",
            )
        elif totals != dict(run.outcomes):
            self.at(
                ref,
                f"run_finished totals {totals} are not what its outcome lines "
                f"say, {dict(run.outcomes)}",
            )

    def read_back(self, ref: int, record: Record, run: _Run) -> None:
        if isinstance(record, ReadBackResult):
            run.outcomes[record.result.value] += 1
        elif isinstance(record, CheckFinished):
            run.finished = ref & _MASK
            totals = {k: v for k, v in record.totals.items() if v}
            if totals != dict(run.outcomes):
                self.at(
                    ref,
                    f"check_finished totals {totals} are not what its read_back lines say, "
                    f"{dict(run.outcomes)}: a line was removed or added",
                )
        else:
            event = "non-event" if isinstance(record, RowOutcome) else record.event
            self.at(ref, f"a {event} line inside read-back {run.run_id}")

    def tally(self, ref: int, record: RowOutcome, run: _Run) -> None:
        uid, outcome, (name, line) = record.normalised_uid, record.outcome, record.source.parts()
        if outcome in ROW_ONLY_OUTCOMES:
            if line is None or all(read.name != name for read in run.inputs):
                self.at(ref, f"source {str(record.source)!r} is not a line of this run's inputs")
            else:
                run.rows.append((name, line, ref, outcome, str(record.source)))
        elif uid is None:
            self.at(ref, f"a {outcome} line without a normalised_uid")
        else:
            self.ledger.uid_line(ref, uid, outcome)

    def rows(self) -> int:
        """Read the inputs as the first run did; check each row is settled once."""
        first, given = self.first_run, self.given
        if given is None or not given.hashes or first is None:
            return 0
        if not self.manifests_match:
            self.notes.append("rows were not checked: the inputs are not the files the runs read")
            return 0
        if first.uid_hash and self.key is None:
            self.notes.append(
                "rows were not checked: the audit names UIDs by pseudonyms, and "
                "BULKDELETE_AUDIT_KEY is not set"
            )
            return 0
        pseudonyms = Pseudonyms(self.key if first.uid_hash else None)
        # Duplicates are judged in the order the first run read its inputs.
        sources = [Source.file(path) for path in first.paths or ()]
        return self.ledger.check(
            read_rows(sources, column=first.column, no_header=first.no_header), pseudonyms
        )
