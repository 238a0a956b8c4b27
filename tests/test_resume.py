"""resume.py in process: what an audit settled, and whether a run may add to it.

The CLI-level resume tests (kill -9, torn tails, real processes) are in test_resume_cli.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, line_of, run_settings, write_audit

from bulkdelete.audit import Pseudonyms
from bulkdelete.cli import message
from bulkdelete.errors import AuditError, SettingError, UsageError
from bulkdelete.outcome import Outcome
from bulkdelete.records import (
    InputFile,
    InputStream,
    Location,
    Record,
    RowOutcome,
    RunFinished,
    RunSettings,
    RunStarted,
    Sending,
)
from bulkdelete.resume import Resume, check_append, load_resume_index, plan_run
from bulkdelete.rows import FileScan, InputSummary, Row
from bulkdelete.settings import KEYED_CHAIN, Secret, Settings, audit_key_id
from bulkdelete.summary import RunStatus

BASE_URL = "https://api.example/v3"
SHA = "ab" * 32
KEY = Secret("audit-key-71c2")


def _started(run_id: str, *, settings: RunSettings | None = None, **changes: Any) -> RunStarted:
    inputs = (InputFile(name="users.csv", rows=4, sha256=SHA, bytes=30), InputStream(name="-"))
    fields: dict[str, Any] = {"inputs": inputs} | changes
    return RunStarted(
        run_id=run_id,
        version="0.1.0",
        settings=settings or run_settings(base_url=BASE_URL),
        repaired_torn_tail_bytes=0,
        **fields,
    )


def _row(run_id: str, uid: str | None, outcome: Outcome, source: str, raw: str = "") -> RowOutcome:
    return RowOutcome(
        run_id=run_id,
        uid=raw or uid or "bad uid",
        normalised_uid=uid,
        permanent=False,
        outcome=outcome,
        http_status=None,
        error_code=None,
        message=None,
        attempts=0 if outcome in {Outcome.INVALID, Outcome.DUPLICATE} else 1,
        source=Location.parse(source),
        reason=None,
        note=None,
    )


def _finished(run_id: str, status: RunStatus) -> RunFinished:
    return RunFinished(
        run_id=run_id,
        status=status,
        totals={},
        rows=0,
        requests=0,
        duration_seconds=0.0,
        fatal_code=None,
    )


def _audit(path: Path, *records: Record) -> Path:
    return write_audit(path, *(line_of(record) for record in records))


def _settings(path: Path, **changes: Any) -> Settings:
    fields: dict[str, Any] = {"base_url": BASE_URL, "api_key": Secret(API_KEY)} | changes
    return Settings(audit_path=path, **fields)


SCANNED = InputSummary(files=(FileScan("users.csv", 4, SHA, 30),), rows=4)


def _interrupted_run(path: Path) -> Path:
    return _audit(
        path,
        _started("r1"),
        Sending(run_id="r1", normalised_uid="alice", source=Location("users.csv", 2)),
        _row("r1", "alice", Outcome.DELETED, "users.csv:2"),
        Sending(run_id="r1", normalised_uid="bob", source=Location("users.csv", 3)),
        _row("r1", None, Outcome.INVALID, "users.csv:4"),
        _row("r1", "carol", Outcome.FAILED, "users.csv:5"),
        _row("r1", None, Outcome.INVALID, "-:1", raw="x y"),
        _finished("r1", RunStatus.INTERRUPTED),
    )


# --- the index --------------------------------------------------------------------------------


def test_the_index_holds_what_the_audit_settled(tmp_path: Path) -> None:
    """Final UIDs, audited rows by file hash or stream, UIDs sent without an answer."""
    index = load_resume_index(_interrupted_run(tmp_path / "audit.jsonl"))

    assert ("alice" in index.final_uids, "carol" in index.final_uids) == (True, False)
    assert index.unknown == {"bob": "r1"}
    assert index.settled_rows == {(SHA, 4)}
    assert index.settled_streamed == {("-", 1, "x y", "invalid")}
    assert (index.runs, index.last_run, index.last_status) == (1, "r1", RunStatus.INTERRUPTED)
    assert (index.last_run_unfinished, index.streamed, index.input_hashes) == (True, {"-"}, {SHA})


def test_the_index_knows_every_runs_kind_target_and_key(tmp_path: Path) -> None:
    """Each run's permanent choice, base URL, uid hashing and key id are collected."""
    keyed = run_settings(base_url=BASE_URL, audit_chain=KEYED_CHAIN, audit_key_id="k1")
    path = _audit(
        tmp_path / "audit.jsonl",
        _started("r1", settings=run_settings(base_url="https://other/v3", permanent=True)),
        _started("r2", settings=keyed),
        _finished("r2", RunStatus.COMPLETED),
    )

    index = load_resume_index(path)

    assert (index.permanent, index.base_urls) == ({True, False}, {BASE_URL, "https://other/v3"})
    assert (index.keyed, index.key_ids, index.last_run_unfinished) == (True, {"k1"}, False)


@pytest.mark.parametrize(
    "line",
    [
        b'{"event": "sending", "run_id": "r"}',
        b'{"event": "run_started", "run_id": "r", "settings": "x"}',
        b'{"event": "run_started", "run_id": "r", "settings": {}, "inputs": [{"sha256": "a"}]}',
    ],
    ids=["sending-without-uid", "settings-not-an-object", "input-without-name"],
)
def test_resume_index_names_the_line_bulkdelete_did_not_write(tmp_path: Path, line: bytes) -> None:
    """A well-formed JSON line with the wrong shape is an AuditError naming it, not a crash."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"event": "note"}\n' + line + b"\n")
    with pytest.raises(AuditError, match="not a line bulkdelete wrote") as raised:
        load_resume_index(path)
    assert raised.value.line == 2


# --- what a resume skips ----------------------------------------------------------------------


def test_a_resume_skips_what_the_audit_settled_and_a_restart_nothing(tmp_path: Path) -> None:
    """Rows are settled by final UID, by (file hash, line), or by stream line, value and status;
    a restart settles none of them."""
    index = load_resume_index(_interrupted_run(tmp_path / "audit.jsonl"))
    plain = Pseudonyms(None)
    resume = Resume(index, {"in.csv": SHA}, plain, streams=frozenset({"-"}))
    restart = Resume(index, {"in.csv": SHA}, plain, restart_of="r1", streams=frozenset({"-"}))
    rows = [
        Row("in.csv:9", "Alice", "alice", None),  # final elsewhere in the file
        Row("in.csv:4", "bad uid", None, "whitespace inside"),  # audited at this line
        Row("in.csv:5", "carol", "carol", None),  # failed: sent again
        Row("-:1", "x y", None, "whitespace inside"),  # audited at this stream line
        Row("-:1", "x z", None, "whitespace inside"),  # another value at that line
    ]

    assert [resume.settles(row) for row in rows] == [True, True, False, True, False]
    assert [restart.settles(row) for row in rows] == [False] * 5


# --- whether a run may add to the audit -------------------------------------------------------


def test_a_plain_run_after_an_unfinished_one_is_refused(tmp_path: Path) -> None:
    """The audit's last run was interrupted: a plain run must say --resume or --restart."""
    settings = _settings(_interrupted_run(tmp_path / "audit.jsonl"))
    with pytest.raises(UsageError, match="ended interrupted") as raised:
        plan_run(settings, SCANNED, resume=False, restart=False)
    said = message(raised.value)  # resume.py names settings; the CLI says them as its flags
    assert ("--resume" in said, "--restart" in said) == (True, True)


def test_resume_and_restart_return_what_the_run_needs(tmp_path: Path) -> None:
    """--resume continues the last run; --restart starts over after it."""
    settings = _settings(_interrupted_run(tmp_path / "audit.jsonl"))

    resumed = plan_run(settings, SCANNED, resume=True, restart=False, streams=["-"])
    restarted = plan_run(settings, SCANNED, resume=False, restart=True)

    assert resumed is not None
    assert restarted is not None
    assert (resumed.restart_of, resumed.streams, resumed.file_hashes) == (
        None,
        frozenset({"-"}),
        {"users.csv": SHA},
    )
    assert restarted.restart_of == "r1"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"permanent": True}, "the same --permanent choice"),
        ({"base_url": "https://elsewhere.example/v3"}, "another target"),
        ({"uid_hash": True, "audit_key": KEY}, "--audit-uid-hash exactly when"),
        ({"audit_key": KEY}, None),
    ],
)
def test_a_resume_must_be_a_run_like_the_audits(
    tmp_path: Path, changes: dict[str, Any], problem: str | None
) -> None:
    """Another permanent choice, target or UID naming is refused; a key may be added."""
    settings = _settings(_interrupted_run(tmp_path / "audit.jsonl"), **changes)
    if problem is None:
        assert plan_run(settings, SCANNED, resume=True, restart=False) is not None
        return
    with pytest.raises(UsageError) as raised:
        plan_run(settings, SCANNED, resume=True, restart=False)
    assert re.search(problem, message(raised.value))


def test_its_errors_name_settings_not_the_clis_flags(tmp_path: Path) -> None:
    """A library caller reads of the settings it passed (resume, restart, permanent), and
    the error names the one at fault: never a flag it has not got."""
    settings = _settings(_interrupted_run(tmp_path / "audit.jsonl"), permanent=True)
    with pytest.raises(SettingError) as both:
        plan_run(settings, SCANNED, resume=True, restart=True)
    with pytest.raises(SettingError) as other_kind:
        plan_run(settings, SCANNED, resume=True, restart=False)

    assert (both.value.setting, str(both.value)) == (
        "restart",
        "resume continues the audit's last run, restart starts over: not both",
    )
    assert (other_kind.value.setting, str(other_kind.value)) == (
        "resume",
        "resume: the audit records deactivation, this run is a permanent erasure; a run in the "
        "same audit must make the same permanent choice",
    )


def test_a_resume_of_other_inputs_is_refused(tmp_path: Path) -> None:
    """No input of this run is one the audit's runs read: it would resend everything."""
    settings = _settings(_interrupted_run(tmp_path / "audit.jsonl"))
    other = InputSummary(files=(FileScan("other.csv", 1, "cd" * 32, 5),), rows=1)
    with pytest.raises(UsageError, match="no input is one the audit's runs read"):
        plan_run(settings, other, resume=True, restart=False)


@pytest.mark.parametrize(
    ("key", "problem"),
    [(None, "chained with BULKDELETE_AUDIT_KEY"), (Secret("another"), "is not the key")],
)
def test_a_keyed_audit_takes_lines_only_with_its_key(
    tmp_path: Path, key: Secret | None, problem: str
) -> None:
    """Without the audit's key, or with another, neither a run nor a read-back may append."""
    keyed = run_settings(base_url=BASE_URL, audit_chain=KEYED_CHAIN, audit_key_id=audit_key_id(KEY))
    path = _audit(
        tmp_path / "audit.jsonl",
        _started("r1", settings=keyed),
        _finished("r1", RunStatus.COMPLETED),
    )
    settings = _settings(path, audit_key=key)
    with pytest.raises(UsageError) as planned:
        plan_run(settings, SCANNED, resume=False, restart=False)
    with pytest.raises(UsageError) as appended:
        check_append(settings)
    assert re.search(problem, message(planned.value))
    assert re.search(problem, message(appended.value))
    check_append(_settings(path, audit_key=KEY))  # the right key: no error


def test_a_new_audit_needs_no_plan(tmp_path: Path) -> None:
    """A plain run into a file that does not exist yet brings nothing to the run."""
    settings = _settings(tmp_path / "new.jsonl")
    assert plan_run(settings, SCANNED, resume=False, restart=False) is None
    with pytest.raises(UsageError, match="there is no audit"):
        plan_run(settings, SCANNED, resume=True, restart=False)
