"""What an earlier run settled, and whether a new run may add to its audit.

``load_resume_index`` reads an audit into a ``ResumeIndex``: the UIDs with a final outcome, the
invalid and duplicate rows already audited, the UIDs whose request left without an answer, and
what every run was (permanent, target, keyed, its inputs). ``plan_run`` checks, before anything
is sent, that a run may append to the audit at all, and returns the ``Resume`` that tells the
run which rows to skip (``resume``) or that it starts over (``restart``). Its errors name
settings (``resume``, ``uid_hash``), never the CLI's flags: see ``errors.SettingError``.

A keyed audit (lines chained with the audit key) takes lines only from a run with that key
(``check_append`` for a read-back): without it a later run would break the chain, and with
``uid_hash`` would name every UID differently, so that a resume resends settled UIDs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bulkdelete.audit import Pseudonyms, read_records, refuse_a_foreign_file
from bulkdelete.errors import SettingError
from bulkdelete.outcome import FINAL_OUTCOMES, ROW_ONLY_OUTCOMES, Outcome
from bulkdelete.records import (
    BatchSending,
    InputFile,
    InputStream,
    Location,
    Record,
    RowOutcome,
    RunFinished,
    RunStarted,
    Sending,
)
from bulkdelete.rows import InputSummary, Row
from bulkdelete.settings import KEYED_CHAIN, Settings, audit_key_id
from bulkdelete.summary import RunStatus
from bulkdelete.uidset import UidSet

_KIND = {True: "permanent erasure", False: "deactivation"}
StreamedRow = tuple[str, int | None, str, str]  # (input name, line, uid as audited, outcome)


@dataclass(slots=True)
class ResumeIndex:
    """What an existing audit already settled, for ``--resume``.

    Rows are recognised by the SHA-256 of their input file and their line, so a resumed run may
    name the same file by another path. A streamed input (stdin) has no hash until its end: its
    rows are recognised by name, line, the value as audited and the outcome.
    """

    final_uids: UidSet = field(default_factory=UidSet)
    settled_rows: set[tuple[str, int | None]] = field(default_factory=set)
    settled_streamed: set[StreamedRow] = field(default_factory=set)
    streamed: set[str] = field(default_factory=set)  # names of inputs some run streamed
    unknown: dict[str, str] = field(default_factory=dict)  # uid sent, no outcome: uid -> run id
    permanent: set[bool] = field(default_factory=set)
    base_urls: set[str] = field(default_factory=set)
    uid_hash: set[bool] = field(default_factory=set)
    keyed: bool = False  # some run chained its lines with an HMAC key
    key_ids: set[str] = field(default_factory=set)  # the keyed runs' ``audit_key_id`` values
    input_hashes: set[str] = field(default_factory=set)  # SHA-256 of every input a run read
    runs: int = 0
    last_run: str | None = None  # the run id of the audit's last delete run
    last_status: RunStatus | None = None  # its run_finished status; None: it has none (killed)

    @property
    def last_run_unfinished(self) -> bool:
        """Tell whether the audit's last delete run ended other than ``completed``.

        Only the last run counts: an interrupted run that a later ``--resume`` completed is
        finished business. Read-backs (``check``) are not delete runs and do not count.
        """
        return self.last_run is not None and self.last_status is not RunStatus.COMPLETED

    def settles(self, *, uid: str | None, file_sha256: str | None, line: int | None) -> bool:
        """Tell whether a row needs nothing more: its UID is final or the row was audited."""
        if uid is not None and uid in self.final_uids:
            return True
        return file_sha256 is not None and (file_sha256, line) in self.settled_rows

    def settles_streamed(self, *, uid: str | None, row: StreamedRow) -> bool:
        """Tell whether a streamed row needs nothing more: its UID is final or it was audited.

        ``row`` is (input name, line, the value as the audit names it, the row's status): a
        row at that line of another stream is recognised only if it reads and judges the same.
        """
        if uid is not None and uid in self.final_uids:
            return True
        return row in self.settled_streamed


_RunInputs = tuple[dict[str, str], set[str]]  # a run's files (name -> SHA-256) and streams


def load_resume_index(path: Path) -> ResumeIndex:
    """Read an audit and return what a resumed run must not do again."""
    index = ResumeIndex()
    inputs_by_run: dict[str, _RunInputs] = {}
    for _number, record in read_records(path):
        _index_record(index, inputs_by_run, record)
    return index


def _index_record(index: ResumeIndex, inputs_by_run: dict[str, _RunInputs], record: Record) -> None:
    if isinstance(record, RunStarted):
        index.runs += 1
        index.last_run, index.last_status = record.run_id, None
        settings = record.settings
        index.permanent.add(settings.permanent)
        index.base_urls.add(settings.base_url)
        index.uid_hash.add(settings.uid_hash)
        if settings.audit_chain == KEYED_CHAIN:
            index.keyed = True
            if settings.audit_key_id:
                index.key_ids.add(settings.audit_key_id)
        inputs = record.inputs or ()
        streams = {f.name for f in inputs if isinstance(f, InputStream)}
        files = {f.name: f.sha256 for f in inputs if isinstance(f, InputFile)}
        inputs_by_run[record.run_id] = files, streams
        index.input_hashes.update(files.values())
        index.streamed |= streams
    elif isinstance(record, Sending):
        index.unknown[record.normalised_uid] = record.run_id
    elif isinstance(record, BatchSending):  # a bulk call's intent: each UID as a Sending
        for uid in record.normalised_uids:
            index.unknown[uid] = record.run_id
    elif isinstance(record, RunFinished) and record.run_id == index.last_run:
        index.last_status = record.status
    elif isinstance(record, RowOutcome):
        _index_row(index, inputs_by_run, record)


def _index_row(index: ResumeIndex, inputs_by_run: dict[str, _RunInputs], row: RowOutcome) -> None:
    uid, outcome = row.normalised_uid, row.outcome
    if uid is not None and outcome is not Outcome.DUPLICATE:
        index.unknown.pop(uid, None)
        if outcome in FINAL_OUTCOMES:
            index.final_uids.add(uid)
    name, line = row.source.parts()
    if outcome not in ROW_ONLY_OUTCOMES or line is None:
        return
    files, streams = inputs_by_run.get(row.run_id, ({}, set()))
    if name in streams:
        index.settled_streamed.add((name, line, row.uid, outcome))
    elif (sha := files.get(name)) is not None:
        index.settled_rows.add((sha, line))


@dataclass(frozen=True, slots=True)
class Resume:
    """What ``--resume`` brings to a run: the audit's index and this input's file hashes.

    With ``restart_of`` (``--restart``, naming the audit's last run) the run starts over
    instead: it settles no row from the index, which then only names the UIDs of unknown fate.
    """

    index: ResumeIndex
    file_hashes: Mapping[str, str]  # input name as rows name it -> SHA-256 of its bytes

    pseudonyms: Pseudonyms  # how the audit names UIDs
    restart_of: str | None = None
    streams: frozenset[str] = frozenset()  # inputs read as they come (stdin): no hash up front

    def settles(self, row: Row) -> bool:
        """Tell whether an earlier run already settled this row (never, in a restart)."""
        if self.restart_of is not None:
            return False
        name, line = Location.parse(row.source).parts()
        uid = None if row.duplicate or row.uid is None else self.pseudonyms.of(row.uid)
        if name in self.streams:
            return self.index.settles_streamed(
                uid=uid, row=(name, line, self.pseudonyms.of(row.raw), row.status)
            )
        return self.index.settles(uid=uid, file_sha256=self.file_hashes.get(name), line=line)


def plan_run(
    settings: Settings,
    scanned: InputSummary,
    *,
    resume: bool,
    restart: bool,
    streams: Sequence[str] = (),
) -> Resume | None:
    """Check the audit a delete run will append to; return what ``resume`` or ``restart``
    bring to the run (None for a plain run). ``scanned`` holds the files of this run,
    ``streams`` the names of its streamed inputs.

    A plain run is refused when the audit's last run did not finish: starting over in the same
    audit would resend what that run settled, and the audit would then hold two final outcomes
    for those rows, which ``verify`` fails. ``resume`` continues that run; ``restart`` says
    that starting over is meant, and the audit records it for ``verify`` and ``report``.
    """
    if resume and restart:
        raise SettingError(
            "{resume} continues the audit's last run, {restart} starts over: not both",
            setting="restart",
        )
    if resume or restart:
        return _continue_plan(settings, scanned, restart=restart, streams=streams)
    if settings.audit_path.is_file():
        refuse_a_foreign_file(settings.audit_path)
        index = load_resume_index(settings.audit_path)
        _check_audit_key(settings, index)
        if index.last_run_unfinished:
            raise SettingError(
                "the audit's last run {run} {how}, so this run would send again what it settled: "
                "continue it with {resume}, start over with {restart}, or write to another "
                "{audit_path}",
                setting="audit_path",
                run=index.last_run,
                how=f"ended {index.last_status}" if index.last_status else "was killed",
            )
    return None


def _continue_plan(
    settings: Settings, scanned: InputSummary, *, restart: bool, streams: Sequence[str]
) -> Resume:
    """Read the audit to continue (or restart) and check it was written by a run like this one.

    A restart is held to the same rules as a resume: the same permanent choice, target, key
    and input (read as in the manifests), or the audit would no longer verify as one piece of
    evidence.
    """
    choice = "restart" if restart else "resume"
    path = settings.audit_path
    if not path.is_file():
        raise SettingError("{setting}: there is no audit at {path}", setting=choice, path=path)
    refuse_a_foreign_file(path)
    index = load_resume_index(path)
    if index.runs == 0:
        raise SettingError("{setting}: {path} records no bulkdelete run", setting=choice, path=path)
    if index.permanent != {settings.permanent}:
        raise SettingError(
            "{setting}: the audit records {kinds}, this run is a {kind}; a run in the same "
            "audit must make the same {permanent} choice",
            setting=choice,
            kinds=" and ".join(sorted(_KIND[p] for p in index.permanent)),
            kind=_KIND[settings.permanent],
        )
    if index.base_urls != {settings.base_url}:
        raise SettingError(
            "{setting}: the audit's runs went to another target than this one", setting=choice
        )
    if index.uid_hash != {settings.uid_hash}:
        raise SettingError(
            "{setting}: use {uid_hash} exactly when the audit's runs did", setting=choice
        )
    _check_audit_key(settings, index, choice)
    known = index.input_hashes & {f.sha256 for f in scanned.files} or index.streamed & {*streams}
    if (index.input_hashes or index.streamed) and not known:
        # A resume would recognise no row as settled and send the whole input again; a restart
        # would mix inputs in one audit, which verify --input can then never pass.
        raise SettingError(
            "{setting}: no input is one the audit's runs read (a file compared by SHA-256, "
            "stdin only after a run that read stdin); use the same inputs, or write to a new "
            "{audit_path}",
            setting=choice,
        )
    return Resume(
        index=index,
        file_hashes={f.name: f.sha256 for f in scanned.files},
        pseudonyms=Pseudonyms.of_run(settings),
        restart_of=index.last_run if restart else None,
        streams=frozenset(streams),
    )


def check_append(settings: Settings) -> None:
    """Refuse to append to an existing keyed audit without its key, or with another key."""
    if settings.audit_path.is_file():
        refuse_a_foreign_file(settings.audit_path)
        _check_audit_key(settings, load_resume_index(settings.audit_path))


def _check_audit_key(settings: Settings, index: ResumeIndex, choice: str | None = None) -> None:
    """Refuse to add lines to a keyed audit without its key, or with another key; ``choice``
    (``resume``, ``restart``) is the choice that led here, if any.

    Without the key the new lines would not be HMAC-chained, and verify fails an unkeyed run
    after a keyed one; with another key they would break the chain and, with ``uid_hash``,
    name every UID differently, so a resume would send settled UIDs again.
    """
    if not index.keyed:
        return
    lead = "{setting}: " if choice else ""
    if settings.audit_key is None:
        problem = "the audit's lines are chained with {audit_key}; set the same key"
    elif index.key_ids and index.key_ids != {audit_key_id(settings.audit_key)}:
        problem = "{audit_key} is not the key the audit's runs used; set that key"
    else:
        return
    raise SettingError(
        f"{lead}{problem} (or write to another {{audit_path}})", setting=choice or "audit_key"
    )
