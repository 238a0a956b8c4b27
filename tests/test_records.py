"""The audit's schema: every kind of line round trips, old audits decode, bad lines are refused."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import API_KEY, line_of, run_settings

from bulkdelete.audit import AuditWriter, link, read_records
from bulkdelete.errors import AuditError
from bulkdelete.evidence import verify
from bulkdelete.outcome import Outcome, ReadBack
from bulkdelete.records import (
    CheckFinished,
    CheckStarted,
    InputFile,
    InputRead,
    InputStopped,
    InputStream,
    Location,
    NotJsonError,
    Operator,
    OtherEvent,
    Probed,
    ReadBackResult,
    Record,
    RecordError,
    RowOutcome,
    RunFinished,
    RunStarted,
    Sending,
    decode,
    encode,
    input_read,
)
from bulkdelete.records import run_settings as settings_record
from bulkdelete.report import build_report
from bulkdelete.resume import load_resume_index
from bulkdelete.settings import Secret, Settings
from bulkdelete.summary import RunStatus

TS = "2026-11-28T09:00:00.000Z"
RUN = "20261128T090000Z-c4bdff3b"
RFC3339_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _row(**changes: Any) -> RowOutcome:
    fields: dict[str, Any] = {
        "ts": TS,
        "run_id": RUN,
        "uid": " Alice-1 ",
        "normalised_uid": "alice-1",
        "permanent": True,
        "outcome": Outcome.NOT_FOUND,
        "http_status": 404,
        "error_code": "ERR_UID_NOT_FOUND",
        "message": "not found",
        "attempts": 2,
        "source": Location("users.csv", 7),
        "reason": None,
        "note": "an earlier request probably deleted it",
    }
    return RowOutcome(**fields | changes)


EVERY_KIND: list[Record] = [
    RunStarted(
        ts=TS,
        run_id=RUN,
        version="0.1.0",
        settings=run_settings(rate=12.5, column="uid", proxy="https://proxy:3128"),
        resumed=True,
        restart_of="20261127T090000Z-00000000",
        repaired_torn_tail_bytes=17,
        operator=Operator(user="ops", host="box"),
        inputs=(
            InputFile(name="users.csv", rows=3, sha256="ab" * 32, bytes=40, column="uid"),
            InputStream(name="-", column=None),
        ),
    ),
    RunStarted(
        ts=TS, run_id=RUN, version="0.1.0", settings=run_settings(), repaired_torn_tail_bytes=0
    ),
    Sending(ts=TS, run_id=RUN, normalised_uid="alice-1", source=Location("-", 1)),
    _row(),
    _row(outcome=Outcome.INVALID, normalised_uid=None, attempts=0, reason="starts with ="),
    InputStopped(
        ts=TS, run_id=RUN, code="INPUT_ERROR", source=Location("-"), message="cannot read"
    ),
    InputRead(ts=TS, run_id=RUN, name="-", rows=2, bytes=12, sha256="cd" * 32, complete=False),
    RunFinished(
        ts=TS,
        run_id=RUN,
        status=RunStatus.INTERRUPTED,
        totals={"deleted": 1, "invalid": 1},
        rows=2,
        skipped=3,
        unsent=4,
        unanswered=5,
        unread=6,
        total=20,
        requests=7,
        duration_seconds=1.5,
        fatal_code=None,
        limit_per_minute=600,
    ),
    CheckStarted(ts=TS, run_id=RUN, version="0.1.0", settings=run_settings(uid_hash=True)),
    ReadBackResult(
        ts=TS,
        run_id=RUN,
        normalised_uid="alice-1",
        result=ReadBack.GONE,
        http_status=404,
        error_code="ERR_UID_NOT_FOUND",
        attempts=1,
    ),
    CheckFinished(
        ts=TS,
        run_id=RUN,
        totals={"gone": 1},
        unchecked=0,
        requests=1,
        duration_seconds=0.25,
        fatal_code="AUTH_ERR_NO_ACCESS",
    ),
    Probed(ts=TS, run_id=RUN, absent=("gone-1", "gone-2"), deactivated=("off-1",)),
]


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("record", EVERY_KIND, ids=lambda r: type(r).__name__)
def test_every_kind_decodes_to_the_record_it_was_encoded_from(record: Record) -> None:
    """encode then decode gives the same record back, through a file with its chain too."""
    assert decode(encode(record)) == record


async def test_records_read_back_from_an_audit_as_written(tmp_path: Path) -> None:
    """Written by the audit writer (prev added) and read by read_records, each kind is equal."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as writer:
        for record in EVERY_KIND:
            writer.write(record)
    expected = list(enumerate(EVERY_KIND, start=1))
    assert expected == list(read_records(path))


async def test_the_writer_appends_prev_last_as_a_copied_record_did(tmp_path: Path) -> None:
    """The line is byte for byte the record's object with ``prev`` as its last key."""
    path = tmp_path / "audit.jsonl"
    async with AuditWriter(path) as writer:
        writer.write(EVERY_KIND[3])
        writer.write(EVERY_KIND[2])
    first, second = path.read_bytes().splitlines()
    assert first == orjson.dumps({**line_of(EVERY_KIND[3]), "prev": None})
    assert second == orjson.dumps({**line_of(EVERY_KIND[2]), "prev": link(first, None)})


def test_settings_are_written_exactly_as_settings_public_gives_them() -> None:
    """The settings record adds, drops and reorders nothing of Settings.public()."""
    settings = Settings(
        base_url="http://127.0.0.1:9/v3",
        api_key=Secret(API_KEY),
        audit_path=Path("audit.jsonl"),
        audit_key=Secret("audit-key"),
        rate=20.0,
    )
    started = RunStarted(
        run_id=RUN, version="0.1.0", settings=settings_record(settings), repaired_torn_tail_bytes=0
    )
    assert b'"settings":' + orjson.dumps(settings.public()) + b"," in encode(started)


def test_a_library_run_started_line_has_no_operator_and_no_inputs() -> None:
    """Without a manifest the line leaves both keys out, as it always did."""
    line = line_of(EVERY_KIND[1])
    assert ("operator" in line, "inputs" in line) == (False, False)
    assert list(line)[:3] == ["ts", "run_id", "event"]


def test_row_record_shape() -> None:
    """A row line carries the input, the outcome and the server's details, nothing else."""
    record = line_of(_row(ts="2026-11-28T09:00:00.000Z", run_id="run-1"))
    assert RFC3339_UTC_MS.fullmatch(record.pop("ts"))
    expected = {
        "run_id": "run-1",
        "uid": " Alice-1 ",
        "normalised_uid": "alice-1",
        "permanent": True,
        "outcome": "not_found",
        "http_status": 404,
        "error_code": "ERR_UID_NOT_FOUND",
        "message": "not found",
        "attempts": 2,
        "source": "users.csv:7",
        "reason": None,
        "note": "an earlier request probably deleted it",
        "ref": None,
    }
    assert expected == record


def test_row_record_of_an_invalid_row_keeps_its_reason() -> None:
    """An invalid row's line has outcome invalid, no normalised UID, and the reason."""
    record = line_of(EVERY_KIND[4])
    expected = ("invalid", None, "starts with =", 0)
    assert expected == (
        record["outcome"],
        record["normalised_uid"],
        record["reason"],
        record["attempts"],
    )


@pytest.mark.parametrize(
    "record", [r for r in EVERY_KIND if not isinstance(r, RowOutcome)], ids=lambda r: r.event
)
def test_event_record_shape(record: Record) -> None:
    """An event line starts with ts, run_id and event, and never has an outcome."""
    line = line_of(record)
    assert RFC3339_UTC_MS.fullmatch(line["ts"])
    assert (list(line)[:3], "outcome" in line) == (["ts", "run_id", "event"], False)


def test_a_new_record_is_stamped_now() -> None:
    """A record made without ts gets the current time, as every audit line carries."""
    assert RFC3339_UTC_MS.fullmatch(
        Sending(run_id=RUN, normalised_uid="a", source=Location("-", 1)).ts
    )


def test_input_read_takes_a_streams_facts() -> None:
    """The facts a stream reports become an input_read record of the run."""
    facts = {"name": "-", "rows": 3, "bytes": 16, "sha256": "ef" * 32, "complete": True}
    record = input_read(RUN, facts)
    assert (record.run_id, record.name, record.rows, record.complete) == (RUN, "-", 3, True)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("users.csv:7", ("users.csv", 7)),
        ("-:12", ("-", 12)),
        ("uids:3", ("uids", 3)),
        ("C:/data/a:b.csv:4", ("C:/data/a:b.csv", 4)),
        ("-", ("-", None)),
        ("users.csv:0.2", ("users.csv:0.2", None)),
        ("users.csv:", ("users.csv:", None)),
        ("users.csv:\u0663", ("users.csv:\u0663", None)),
    ],
)
def test_a_location_reads_back_from_its_text(text: str, parts: tuple[str, int | None]) -> None:
    """``file:line`` splits at the last colon before digits; anything else has no line."""
    location = Location.parse(text)
    assert (location.parts(), location, Location(*parts)) == (parts, text, text)


# --- audits written by earlier versions -------------------------------------------------------

# Lines as the first versions wrote them (git log -p of run.py, audit.py and settings.py): no
# chain, no resumed, no max_share / max_outage / audit_chain / uid_hash / audit_key_id /
# no_header / proxy in the settings, no column in the inputs, and a run_finished without
# skipped, unsent, unanswered, unread, total or limit_per_minute.
FIRST_VERSION = [
    b'{"ts":"2026-11-28T09:00:00.000Z","run_id":"r1","event":"run_started","version":"0.1.0",'
    b'"settings":{"base_url":"https://app.api-us.cometchat.io/v3","target":"app app",'
    b'"permanent":false,"rate":166.66666666666666,"concurrency":50,"max_attempts":6,'
    b'"max_retry_time":300.0,"timeout":30.0,"column":null,"ca_bundle":null},'
    b'"repaired_torn_tail_bytes":0,'
    b'"inputs":[{"name":"users.csv","rows":2,"sha256":"' + b"ab" * 32 + b'","bytes":20}]}',
    b'{"ts":"2026-11-28T09:00:01.000Z","run_id":"r1","event":"run_finished","status":'
    b'"completed","totals":{"deleted":2},"rows":2,"requests":2,"duration_seconds":1.0,'
    b'"fatal_code":null}',
    # The demo's manifest had no bytes.
    b'{"ts":"2026-11-28T09:00:00.000Z","run_id":"r2","event":"run_started","version":"0.1.0",'
    b'"settings":{"base_url":"http://127.0.0.1:9/v3","target":"demo","permanent":false,'
    b'"rate":"auto","max_share":0.98,"concurrency":100,"max_attempts":6,"max_retry_time":300.0,'
    b'"timeout":30.0,"max_outage":300.0,"column":null,"ca_bundle":null,"audit_chain":"sha256",'
    b'"audit_key_id":null,"uid_hash":false},"resumed":false,"restart_of":null,'
    b'"repaired_torn_tail_bytes":0,"inputs":[{"name":"users.csv","rows":2,"sha256":"ab"}]}',
]


def test_the_first_versions_lines_decode_with_what_they_meant() -> None:
    """Fields added later read as their meaning before: not resumed, unkeyed, no proxy..."""
    started, finished, demo = (decode(line) for line in FIRST_VERSION)
    assert isinstance(started, RunStarted)
    assert isinstance(finished, RunFinished)
    assert isinstance(demo, RunStarted)
    settings = started.settings
    assert (started.resumed, started.restart_of, started.operator) == (False, None, None)
    assert (settings.rate, settings.max_share, settings.max_outage) == (
        166.66666666666666,
        None,
        None,
    )
    assert (settings.audit_chain, settings.audit_key_id, settings.uid_hash) == (
        "sha256",
        None,
        False,
    )
    assert (settings.no_header, settings.proxy) == (False, None)
    assert started.inputs == (InputFile(name="users.csv", rows=2, sha256="ab" * 32, bytes=20),)
    assert (finished.skipped, finished.unanswered, finished.total, finished.limit_per_minute) == (
        None,
        None,
        None,
        None,
    )
    assert demo.inputs == (InputFile(name="users.csv", rows=2, sha256="ab"),)


def _old_audit(tmp_path: Path) -> tuple[Path, Path]:
    """Write an input and the audit a version before unanswered, unread, total, column,
    no_header, proxy, uid_hash, audit_key_id and restart_of would have written for it."""
    source = tmp_path / "users.txt"
    source.write_bytes(b"uid\nalice\nbob\nbad/uid\n")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    settings = {
        "base_url": "http://127.0.0.1:9/v3", "target": "http://127.0.0.1:9/v3",
        "permanent": True, "rate": "auto", "max_share": 0.98, "concurrency": 100,
        "max_attempts": 6, "max_retry_time": 300.0, "timeout": 30.0, "max_outage": 300.0,
        "column": None, "ca_bundle": None, "audit_chain": "sha256",
    }  # fmt: skip
    row = {"run_id": "old", "permanent": True, "http_status": 200, "error_code": None,
           "message": None, "attempts": 1, "reason": None, "note": None}  # fmt: skip
    lines: list[dict[str, Any]] = [
        {"event": "run_started", "version": "0.1.0", "settings": settings, "resumed": False,
         "repaired_torn_tail_bytes": 0, "operator": {"user": "ops", "host": "box"},
         "inputs": [{"name": str(source), "rows": 3, "sha256": sha, "bytes": 21}]},
        {"event": "sending", "normalised_uid": "alice", "source": f"{source}:2"},
        {**row, "uid": "alice", "normalised_uid": "alice", "outcome": "deleted",
         "source": f"{source}:2"},
        {"event": "sending", "normalised_uid": "bob", "source": f"{source}:3"},
        {**row, "uid": "bob", "normalised_uid": "bob", "outcome": "not_found",
         "http_status": 404, "error_code": "ERR_UID_NOT_FOUND", "source": f"{source}:3"},
        {**row, "uid": "bad/uid", "normalised_uid": None, "outcome": "invalid", "attempts": 0,
         "http_status": None, "reason": "holds a /", "source": f"{source}:4"},
        {"event": "run_finished", "status": "completed",
         "totals": {"deleted": 1, "not_found": 1, "failed": 0, "invalid": 1, "duplicate": 0},
         "rows": 3, "skipped": 0, "unsent": 0, "requests": 3, "duration_seconds": 0.5,
         "fatal_code": None},
    ]  # fmt: skip
    audit, prev, out = tmp_path / "old.jsonl", None, b""
    for fields in lines:
        body = orjson.dumps({"ts": TS, "run_id": "old", **fields, "prev": prev})
        out, prev = out + body + b"\n", link(body, None)
    audit.write_bytes(out)
    return source, audit


def test_an_audit_of_an_earlier_version_is_reported_resumed_and_verified(tmp_path: Path) -> None:
    """report, the resume index and verify --input all read an audit of an earlier version."""
    source, audit = _old_audit(tmp_path)

    report = build_report([audit])
    index = load_resume_index(audit)
    verified = verify([audit], inputs=[source])

    assert (report.totals["deleted"], report.totals["not_found"], report.invalid_rows) == (1, 1, 1)
    assert report.runs[0].status == "completed"
    assert ([uid in index.final_uids for uid in ("alice", "bob")], index.last_run_unfinished) == (
        [True, True],
        False,
    )
    assert (verified.ok, verified.rows_checked) == (True, 3), verified.findings


# --- lines that are not records ---------------------------------------------------------------

GOOD = line_of(EVERY_KIND[2])
ROW, STARTED, FINISHED = line_of(_row()), line_of(EVERY_KIND[0]), line_of(EVERY_KIND[7])


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"a": 1}', "neither an event nor a row outcome"),
        (orjson.dumps({**GOOD, "event": 3}), "TypeError: event is int, not a string"),
        (
            orjson.dumps({k: v for k, v in GOOD.items() if k != "normalised_uid"}),
            "KeyError: 'sending.normalised_uid'",
        ),
        (orjson.dumps({**ROW, "attempts": True}), "row.attempts is bool, not an integer"),
        (orjson.dumps({**ROW, "attempts": "2"}), "row.attempts is str, not an integer"),
        (orjson.dumps({**ROW, "outcome": "erased"}), "'erased' is not a valid Outcome"),
        (
            orjson.dumps({**STARTED, "settings": "x"}),
            "run_started.settings is str, not an object",
        ),
        (
            orjson.dumps({**STARTED, "settings": {**STARTED["settings"], "rate": True}}),
            "run_started.settings.rate is bool, not a number",
        ),
        (
            orjson.dumps({**STARTED, "inputs": [{"sha256": "ab"}]}),
            "KeyError: 'run_started.inputs[0].name'",
        ),
        (orjson.dumps({**STARTED, "inputs": {"name": "a"}}), "inputs is dict, not a list"),
        (
            orjson.dumps({**FINISHED, "totals": {"deleted": "1"}}),
            "run_finished.totals is dict, not an object of counts",
        ),
        (orjson.dumps({**FINISHED, "status": "paused"}), "'paused' is not a valid RunStatus"),
    ],
    ids=[
        "no-kind", "event-not-text", "missing-field", "bool-for-int", "text-for-int",
        "unknown-outcome", "settings-not-object", "rate-not-number", "input-without-name",
        "inputs-not-a-list",
        "counts-not-numbers", "unknown-status",
    ],
)  # fmt: skip
def test_a_line_bulkdelete_never_writes_is_a_record_error(line: bytes, problem: str) -> None:
    """A JSON object of the wrong shape is one RecordError saying what is wrong."""
    with pytest.raises(RecordError) as raised:
        decode(line)
    assert (type(raised.value), problem in str(raised.value)) == (RecordError, True), raised.value


@pytest.mark.parametrize("line", [b"[1, 2]", b'"text"', b"42", b"null", b"", b'{"ts": 20'])
def test_a_line_that_is_no_json_object_is_not_json(line: bytes) -> None:
    """Damage (not an object, not JSON at all) is told apart from a wrong shape."""
    with pytest.raises(NotJsonError):
        decode(line)


def test_an_event_of_a_later_version_decodes_as_other_event() -> None:
    """An unknown event is kept as what it is, so readers can skip it, not refuse the audit."""
    expected = OtherEvent(ts=TS, run_id=RUN, event="checkpoint")
    assert expected == decode(
        orjson.dumps({"ts": TS, "run_id": RUN, "event": "checkpoint", "x": 1})
    )


def test_a_bad_line_in_an_audit_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    """Reading an audit, the first line that is no record stops it: AuditError, file:line."""
    path = tmp_path / "audit.jsonl"
    bad = orjson.dumps({**line_of(_row()), "attempts": None})
    path.write_bytes(encode(EVERY_KIND[2]) + b"\n" + bad + b"\n" + encode(EVERY_KIND[3]) + b"\n")
    with pytest.raises(AuditError) as raised:
        list(read_records(path))
    assert (raised.value.path, raised.value.line) == (str(path), 2)
    assert str(raised.value).startswith(f"{path}:2: not a line bulkdelete wrote (")
