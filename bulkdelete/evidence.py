"""Check audits as evidence: the hash chain, each run's manifest, one final outcome per row.

``verify`` hashes every audit line exactly as it is on disk. In each file, on its own: the first
line's ``prev`` is null and every other line's ``prev`` is the link (``audit.link``) of the line
before it. A line belongs to the run of the latest ``run_started`` at or before it and is linked
with that run's ``audit_chain``: SHA-256, or HMAC-SHA256 with the audit key. Once a run in a
file is keyed, every later run in it must be too: anyone can append an unkeyed run, so one after
a keyed run is a downgrade, not evidence. A ``run_finished`` line must count its run's outcome
lines. An unterminated last line is the torn tail of a kill: it is noted, not checked (the next
run cuts it off).

Given the input files, every run's manifest must list exactly these files, each by its SHA-256.
An input a run read as a stream (stdin) has its hash in the run's ``input_read`` line instead:
of the whole file when the run read the stream to its end, else of the file's first ``bytes``
bytes. A run killed before it wrote that line is matched to the one given file its other inputs
leave, and noted. Every input row must be settled by exactly one audit line across all runs and
files: a valid row's UID by one ``deleted`` or ``not_found`` line (``failed`` is not final), an
invalid or duplicate row by one line with that outcome at its (file, line).

A ``--restart`` (``restart_of`` in its ``run_started``) starts over on purpose, so it settles
rows again that earlier runs settled. Runs are grouped into attempts: a run that is not
``resumed`` begins one, and each ``--resume`` continues it. A row may be settled once in each
attempt that is a restart, on top of once before it; within one attempt, and across attempts
that are not restarts (the same command run twice), a second final line is still a failure.

A file's head is the link of its last line. Each line holds the link of the one before, so the
head commits to the whole file: an auditor who writes it down can later show that nothing was
changed, cut or appended since, even where anyone could recompute an unkeyed chain.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bulkdelete.audit import Pseudonyms, link
from bulkdelete.errors import InputError
from bulkdelete.outcome import ROW_ONLY_OUTCOMES, Outcome
from bulkdelete.records import (
    DEFAULT_CHAIN,
    CheckFinished,
    CheckStarted,
    InputRead,
    InputStream,
    Location,
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
from bulkdelete.rows import Row, Source, read_rows
from bulkdelete.settings import KEYED_CHAIN

_CHAINS: Final = frozenset({DEFAULT_CHAIN, KEYED_CHAIN})
_MAX_FINDINGS: Final = 20  # beyond these, problems are counted, not listed
_RECENT: Final = 64  # earlier lines searched to tell where a misplaced line's prev points
_BITS: Final = 40  # a line reference packs (file index, line) in one int: memory per UID
_MASK: Final = (1 << _BITS) - 1
_CHUNK: Final = 1 << 20
_Recent = collections.deque[tuple[int, bytes]]  # (line number, bytes) of the lines just read


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the file and line (``None`` for the whole file) and what is wrong there."""

    path: str
    line: int | None
    problem: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found: ``ok`` only when there is no finding; the first problem first.

    ``head`` is the link of the last audit's last line (``None`` when its chain is keyed and no
    key was given), ``heads`` that of every audit. ``notes`` are not failures.
    """

    ok: bool
    findings: tuple[Finding, ...]
    lines: int
    runs: int
    head: str | None
    rows_checked: int = 0
    notes: tuple[str, ...] = ()
    heads: tuple[tuple[str, str | None], ...] = ()


@dataclass(slots=True)
class _Input:
    """One input of a run's manifest; a stream's hash comes with its ``input_read`` line."""

    name: str  # as the run's rows name it
    sha256: str | None
    size: int | None = None
    complete: bool = True  # False: the run read only the first ``size`` bytes of a stream
    streamed: bool = False

    def __str__(self) -> str:
        if self.sha256 is None:
            return f"{self.name} (streamed, no input_read line)"
        if not self.complete:
            return f"{self.name} (its first {self.size} bytes, sha256 {self.sha256[:12]}…)"
        return f"{self.name} (sha256 {self.sha256[:12]}…)"


@dataclass(slots=True)
class _Run:
    run_id: str
    line: int
    key: bytes | None
    checkable: bool  # False for a keyed chain when no key was given
    inputs: list[_Input]
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
        check.hash_inputs(inputs)
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
        head=check.heads[-1][1] if check.heads else None,
        rows_checked=rows,
        notes=tuple(check.notes),
        heads=tuple(check.heads),
    )


def verification_text(v: Verification) -> str:
    """Return what ``bulkdelete verify`` prints: ``PASS`` or ``FAIL`` first, then details."""
    if v.ok:
        rows = f"; {v.rows_checked} input rows, one final outcome each" if v.rows_checked else ""
        lines = [f"PASS: {v.lines} lines in {v.runs} runs, chain intact{rows}"]
    else:
        lines = [f"FAIL: {v.findings[0]}", *(f"also: {f}" for f in v.findings[1:])]
        lines.append(f"checked: {v.lines} lines, {v.runs} runs, {v.rows_checked} input rows")
    for path, head in v.heads:
        shown = head or "unknown (the last run's chain is keyed and no key was given)"
        lines.append(f"head: {shown}" if len(v.heads) == 1 else f"head of {path}: {shown}")
    lines += [f"note: {note}" for note in v.notes]
    return "\n".join(lines)


class _Checker:
    def __init__(self, audits: list[str], key: bytes | None) -> None:
        self.audits, self.key, self.index = audits, key, 0
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.unlisted = self.lines = self.runs = self.keyed_runs = self.orphans_seen = 0
        self.heads: list[tuple[str, str | None]] = []
        self.last_keyed: tuple[str, int] | None = None  # (run id, line) in the current file
        self.started: dict[str, int] = {}  # run id -> its run_started line
        self.first_run: _Run | None = None
        self.pseudonyms = Pseudonyms(None)
        self.inputs: dict[str, str] | None = None  # input path -> SHA-256; None: unchecked
        self.prefixes: dict[tuple[str, int], str | None] = {}  # (path, bytes) -> their SHA-256
        self.manifests_match = True
        self.finals: dict[str, int] = {}  # uid -> its first final line (of the last restart)
        self.extra_finals: dict[str, list[int]] = {}
        self.failed: dict[str, int] = {}  # uid -> its last failed line
        self.settled: dict[tuple[str, int | None], list[tuple[int, str, str]]] = {}  # path, line
        self.attempts: list[int] = []  # first line ref of each run that is not a --resume
        self.restarts: set[int] = set()  # the attempts that are a --restart

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

    def hash_inputs(self, paths: Sequence[Path]) -> None:
        self.inputs = {}
        for path in paths:
            try:
                with path.open("rb") as handle:
                    self.inputs[str(path)] = hashlib.file_digest(handle, "sha256").hexdigest()
            except OSError as exc:
                self.find(str(path), None, f"cannot read the input: {exc.strerror or exc}")
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
        self.heads.append((name, head))

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
        run_id, settings = record.run_id, record.settings
        chain = settings.audit_chain
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
        inputs = record.inputs if isinstance(record, RunStarted) else None
        read = [
            _Input(f.name, None, streamed=True)
            if isinstance(f, InputStream)
            else _Input(f.name, f.sha256)
            for f in inputs or ()
        ]
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
        if record.resumed and self.attempts and self.attempts[-1] >> _BITS == self.index:
            return
        self.attempts.append(ref)
        if restarted := record.restart_of:
            self.restarts.add(len(self.attempts) - 1)
            self.notes.append(
                f"{self.audits[self.index]}:{ref & _MASK}: run {record.run_id} starts over "
                f"(--restart) after run {restarted}: a row settled before it and again by it "
                "counts once"
            )

    def restarted(self, earlier: int, later: int) -> bool:
        """Tell whether line ``later`` is in a restart begun after line ``earlier``'s attempt."""
        attempt = bisect.bisect_right(self.attempts, later) - 1
        return (
            attempt in self.restarts and attempt > bisect.bisect_right(self.attempts, earlier) - 1
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
        if not run.check and self.inputs is not None:
            self.match_inputs(run, self.inputs)

    def match_inputs(self, run: _Run, inputs: dict[str, str]) -> None:
        """Match each input of the run's manifest to a given file; file the run's rows by it."""
        left = dict(inputs)
        paths: list[str | None] = []
        for read in run.inputs:
            path = next((p for p in left if self.is_read(p, read)), None)
            if path is not None:
                del left[path]
            paths.append(path)
        unknown = [n for n, read in enumerate(run.inputs) if read.sha256 is None]
        if len(unknown) == 1 and paths.count(None) == 1 and len(left) == 1:
            # A killed run never said what it read of its stream: the one file left is it.
            paths[unknown[0]] = path = next(iter(left))
            left.clear()
            self.notes.append(
                f"{self.audits[self.index]}:{run.line}: run {run.run_id} was killed before "
                f"it said what it read of {run.inputs[unknown[0]].name}: matched to {path} "
                "by its rows alone"
            )
        if left or None in paths:
            self.manifests_match = False
            given = ", ".join(f"{p} (sha256 {sha[:12]}…)" for p, sha in inputs.items())
            its = ", ".join(str(read) for read in run.inputs) or "nothing"
            self.find(
                self.audits[self.index],
                run.line,
                f"input {given} is not what this run read: {its}",
            )
            return
        run.paths = [path for path in paths if path is not None]
        by_name = {read.name: path for read, path in zip(run.inputs, run.paths, strict=True)}
        for name, line, ref, outcome, source in run.rows:
            self.settled.setdefault((by_name[name], line), []).append((ref, outcome, source))

    def is_read(self, path: str, read: _Input) -> bool:
        """Tell whether ``read`` is the given file ``path``, or (a stream cut short) its start."""
        if read.sha256 is None:
            return False
        if read.complete or read.size is None:
            return (self.inputs or {}).get(path) == read.sha256
        if (path, read.size) not in self.prefixes:
            self.prefixes[path, read.size] = _prefix_sha256(Path(path), read.size)
        return self.prefixes[path, read.size] == read.sha256

    def input_read(self, ref: int, record: InputRead, run: _Run) -> None:
        """Take a stream's hash, size and completeness from its ``input_read`` line."""
        read = next((r for r in run.inputs if r.streamed and r.name == record.name), None)
        if read is None or read.sha256 is not None:
            self.at(ref, f"input_read names {record.name!r}, which this run did not stream")
            return
        read.sha256, read.size, read.complete = record.sha256, record.bytes, record.complete

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
            if self.inputs is not None:
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
        uid, outcome, (name, line) = record.normalised_uid, record.outcome, record.source
        if outcome in ROW_ONLY_OUTCOMES:
            if line is None or all(read.name != name for read in run.inputs):
                self.at(ref, f"source {str(record.source)!r} is not a line of this run's inputs")
            else:
                run.rows.append((name, line, ref, outcome, str(record.source)))
        elif uid is None:
            self.at(ref, f"a {outcome} line without a normalised_uid")
        elif outcome is Outcome.FAILED:
            self.failed[uid] = ref
        elif uid not in self.finals or self.restarted(self.finals[uid], ref):
            self.finals[uid] = ref
        else:
            self.extra_finals.setdefault(uid, []).append(ref)

    def rows(self) -> int:
        first, inputs, count = self.first_run, self.inputs, 0
        if not inputs or first is None:
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
        self.pseudonyms = Pseudonyms(self.key if first.uid_hash else None)
        # Duplicates are judged in the order the first run read its inputs.
        sources = [Source.file(path) for path in first.paths or ()]
        try:
            for row in read_rows(sources, column=first.column, no_header=first.no_header):
                count += 1
                self.row(row)
        except InputError as exc:
            self.find(exc.source, exc.line, f"cannot read the input: {exc}")
        for uid, ref in self.finals.items():
            self.at(ref, f"uid {uid!r} has a final outcome but is in none of the inputs")
        for entries in self.settled.values():
            for ref, outcome, source in entries:
                self.at(ref, f"records {source} as {outcome}, but the inputs hold no such row")
        return count

    def row(self, row: Row) -> None:
        name, number = Location.parse(row.source)
        uid, status = self.pseudonyms.of(row.uid or ""), row.status
        if status == "valid":
            if (first := self.finals.pop(uid, None)) is None:
                failed = self.failed.get(uid)
                why = "" if failed is None else f"; line {self.where(failed)} says failed"
                self.find(name, number, f"uid {uid!r} has no final outcome in any run{why}")
            elif extra := self.extra_finals.pop(uid, None):
                lines = ", ".join(self.where(ref) for ref in [first, *extra])
                self.at(extra[0], f"uid {uid!r} has {len(extra) + 1} final outcomes: lines {lines}")
            return
        entries = self.settled.pop((name, number), [])
        same = [ref for ref, outcome, _ in entries if outcome == status]
        for ref, outcome, _ in entries:
            if outcome != status:
                self.at(ref, f"records {row.source} as {outcome}, but that row is {status}")
        extra = [b for a, b in itertools.pairwise(same) if not self.restarted(a, b)]
        if not same:
            self.find(name, number, f"this {status} row has no {status} line in the audit")
        elif extra:
            lines = ", ".join(self.where(ref) for ref in same)
            self.at(extra[0], f"row {row.source} has {len(same)} {status} lines: lines {lines}")


def _prefix_sha256(path: Path, size: int) -> str | None:
    """Return the SHA-256 of the first ``size`` bytes of ``path``; None if it holds fewer."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while size and (chunk := handle.read(min(size, _CHUNK))):
                digest.update(chunk)
                size -= len(chunk)
    except OSError:
        return None  # hash_inputs has reported an unreadable file already
    return None if size else digest.hexdigest()
