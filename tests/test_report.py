"""Reading audits back: latest state per UID, runs, unknown state, and the failed-UID export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import line_of, run_settings, write_audit

from bulkdelete.errors import AuditError
from bulkdelete.exports import write_failed_csv
from bulkdelete.outcome import Outcome
from bulkdelete.records import (
    Location,
    Probed,
    RowOutcome,
    RunFinished,
    RunStarted,
    Sending,
    encode,
)
from bulkdelete.report import (
    TRANSPORT,
    Report,
    build_report,
    report_json,
    report_text,
)
from bulkdelete.rows import Row, Source, read_rows, scan
from bulkdelete.summary import RunStatus

T0 = "2026-11-28T09:00:00.000Z"
T1 = "2026-11-28T09:00:05.500Z"
T2 = "2026-11-28T09:01:00.000Z"
T3 = "2026-11-28T09:02:00.000Z"


def started(run_id: str, *, permanent: bool = False, ts: str = T0) -> dict[str, Any]:
    settings = run_settings(base_url="http://fake/v3", target="app-1", permanent=permanent)
    record = RunStarted(
        ts=ts, run_id=run_id, version="0.1.0", settings=settings, repaired_torn_tail_bytes=0
    )
    return line_of(record)


def finished(
    run_id: str,
    *,
    status: str = "completed",
    requests: int = 0,
    duration: float = 1.0,
    **totals: int,
) -> dict[str, Any]:
    record = RunFinished(
        ts=T3,
        run_id=run_id,
        status=RunStatus(status),
        totals={o.value: totals.get(o.value, 0) for o in Outcome},
        rows=sum(totals.values()),
        requests=requests,
        duration_seconds=duration,
        fatal_code="AUTH_ERR_NO_ACCESS" if status == "aborted" else None,
    )
    return line_of(record)


def sending(run_id: str, uid: str, *, ts: str = T1) -> dict[str, Any]:
    record = Sending(ts=ts, run_id=run_id, normalised_uid=uid, source=Location.parse("users.csv:2"))
    return line_of(record)


def row(
    run_id: str,
    uid: str | None,
    outcome: Outcome,
    *,
    source: str = "users.csv:2",
    code: str | None = None,
    status: int | None = None,
    attempts: int = 1,
    permanent: bool = False,
    ts: str = T1,
) -> dict[str, Any]:
    record = RowOutcome(
        ts=ts,
        run_id=run_id,
        uid=uid or "bad uid",
        normalised_uid=uid,
        permanent=permanent,
        outcome=outcome,
        http_status=status,
        error_code=code,
        message=None,
        attempts=attempts,
        source=Location.parse(source),
        reason="whitespace inside" if uid is None else None,
        note=None,
    )
    return line_of(record)


audit = write_audit


def one_failed_run(tmp_path: Path) -> Report:
    return build_report(
        [
            audit(
                tmp_path / "audit.jsonl",
                started("r1"),
                row("r1", "alice", Outcome.FAILED, code="ERR_X", status=400, source="u.csv:2"),
                row("r1", "bob", Outcome.DELETED, status=200, source="u.csv:3"),
                row("r1", "carol", Outcome.FAILED, code="TIMEOUT", source="u.csv:4"),
                finished("r1", requests=3, deleted=1, failed=2),
            )
        ]
    )


def test_latest_outcome_wins_across_runs(tmp_path: Path) -> None:
    """A UID's state is its last outcome, whichever run wrote it."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "alice", Outcome.FAILED, code="ERR_X", status=400),
        row("r1", "bob", Outcome.DELETED, status=200, source="users.csv:3"),
        finished("r1"),
        started("r2", ts=T2),
        row("r2", "alice", Outcome.DELETED, status=200, ts=T2),
        row("r2", "bob", Outcome.NOT_FOUND, code="ERR_UID_NOT_FOUND", status=404, ts=T2),
        finished("r2"),
    )
    report = build_report([path])
    assert {uid: s.outcome for uid, s in report.uids.items()} == {
        "alice": Outcome.DELETED,
        "bob": Outcome.NOT_FOUND,
    }
    assert (report.uids["alice"].run_id, report.uids["alice"].ts) == ("r2", T2)
    assert report.totals == {
        "deleted": 1,
        "not_found": 1,
        "failed": 0,
        "invalid": 0,
        "duplicate": 0,
        "already_deactivated": 0,
    }


def test_a_restart_does_not_undo_an_earlier_deletion_of_the_same_kind(tmp_path: Path) -> None:
    """A --restart's not-found or failure for a UID deleted before keeps it deleted, but an
    erasure's not-found after a mere deactivation stays not found (it may only be deactivated)."""
    restart = {**started("r3", permanent=True, ts=T2), "restart_of": "r2"}
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "dora", Outcome.DELETED, status=200, source="users.csv:5"),
        finished("r1"),
        started("r2", permanent=True),
        row("r2", "alice", Outcome.DELETED, status=200, permanent=True),
        row("r2", "bob", Outcome.DELETED, status=200, permanent=True, source="users.csv:3"),
        restart,
        row("r3", "alice", Outcome.NOT_FOUND, code="ERR_UID_NOT_FOUND", permanent=True, ts=T2),
        row("r3", "bob", Outcome.FAILED, status=500, permanent=True, source="users.csv:3", ts=T2),
        row("r3", "carol", Outcome.NOT_FOUND, permanent=True, source="users.csv:4", ts=T2),
        row("r3", "dora", Outcome.NOT_FOUND, permanent=True, source="users.csv:5", ts=T2),
        finished("r3", not_found=3, failed=1),
    )

    report = build_report([path])

    assert {uid: (s.outcome, s.run_id) for uid, s in report.uids.items()} == {
        "alice": (Outcome.DELETED, "r2"),
        "bob": (Outcome.DELETED, "r2"),
        "carol": (Outcome.NOT_FOUND, "r3"),
        "dora": (Outcome.NOT_FOUND, "r3"),
    }
    assert report.not_found_in_permanent == ("carol", "dora")


def test_latest_outcome_wins_across_files_in_the_order_given(tmp_path: Path) -> None:
    """Files are read in the order given, so the last file's outcome wins."""
    first = audit(
        tmp_path / "a.jsonl", started("r1"), row("r1", "alice", Outcome.DELETED), finished("r1")
    )
    second = audit(
        tmp_path / "b.jsonl",
        started("r2"),
        row("r2", "alice", Outcome.FAILED, code="ERR_X"),
        finished("r2"),
    )
    assert build_report([first, second]).uids["alice"].outcome is Outcome.FAILED
    assert build_report([second, first]).uids["alice"].outcome is Outcome.DELETED
    assert [run.run_id for run in build_report([second, first]).runs] == ["r2", "r1"]


def test_duplicate_rows_do_not_change_a_uids_state(tmp_path: Path) -> None:
    """A duplicate row shares its first row's fate: it is counted but leaves the state alone."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "alice", Outcome.FAILED, code="ERR_X", status=400, source="u.csv:2"),
        row("r1", "alice", Outcome.DUPLICATE, attempts=0, source="u.csv:3"),
        row("r1", "alice", Outcome.DUPLICATE, attempts=0, source="u.csv:4"),
        finished("r1"),
    )
    report = build_report([path])
    assert report.uids["alice"].outcome is Outcome.FAILED
    assert report.uids["alice"].source == "u.csv:2"
    assert (report.duplicate_rows, report.totals["duplicate"]) == (2, 2)


def test_invalid_rows_count_once_per_source(tmp_path: Path) -> None:
    """Invalid rows are counted by source, the latest record for a source deciding."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", None, Outcome.INVALID, attempts=0, source="u.csv:2"),
        row("r1", None, Outcome.INVALID, attempts=0, source="u.csv:3"),
        finished("r1"),
        started("r2"),
        row("r2", None, Outcome.INVALID, attempts=0, source="u.csv:2"),
        row("r2", "dave", Outcome.DELETED, source="u.csv:3"),
        finished("r2"),
    )
    report = build_report([path])
    assert (report.invalid_rows, report.totals["invalid"]) == (1, 1)
    assert list(report.uids) == ["dave"]


def test_killed_run_has_status_killed_and_figures_from_its_own_lines(tmp_path: Path) -> None:
    """A run with no run_finished is killed; duration, requests and totals come from its lines."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "alice", Outcome.DELETED, attempts=3, ts=T1),
        row("r1", None, Outcome.INVALID, attempts=0, source="u.csv:9", ts=T1),
        sending("r1", "bob", ts=T2),
    )
    (run,) = build_report([path]).runs
    assert (run.status, run.finished, run.fatal_code) == ("killed", None, None)
    assert run.duration_seconds == 60.0
    assert run.requests == 3
    assert run.rate == 3 / 60.0
    assert run.totals == {
        "deleted": 1,
        "not_found": 0,
        "failed": 0,
        "invalid": 1,
        "duplicate": 0,
        "already_deactivated": 0,
    }
    assert (run.target, run.permanent, run.started) == ("app-1", False, T0)


def test_finished_run_takes_its_figures_from_run_finished(tmp_path: Path) -> None:
    """A finished run reports the status, requests, duration and totals its last line records."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1", permanent=True),
        row("r1", "alice", Outcome.DELETED, permanent=True),
        finished("r1", status="aborted", requests=8, duration=4.0, deleted=1),
    )
    (run,) = build_report([path]).runs
    assert (run.status, run.finished, run.fatal_code) == ("aborted", T3, "AUTH_ERR_NO_ACCESS")
    assert (run.requests, run.duration_seconds, run.rate) == (8, 4.0, 2.0)
    assert run.totals["deleted"] == 1
    assert run.permanent is True


def test_zero_duration_gives_zero_rate(tmp_path: Path) -> None:
    """A run that took no measurable time has a rate of 0, not a division error."""
    path = audit(tmp_path / "audit.jsonl", started("r1"), finished("r1", duration=0.0))
    assert build_report([path]).runs[0].rate == 0.0


def test_sent_uid_without_outcome_is_in_unknown_state(tmp_path: Path) -> None:
    """A sending line with no outcome after it leaves the UID's fate unknown."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        sending("r1", "alice"),
        row("r1", "alice", Outcome.DELETED),
        sending("r1", "zed"),
        sending("r1", "bob"),
    )
    report = build_report([path])
    assert report.unknown == ("bob", "zed")
    assert "bob" not in report.uids


def test_later_outcome_clears_unknown_state_but_a_duplicate_does_not(tmp_path: Path) -> None:
    """An outcome for the UID in a later run settles it; a duplicate row of it does not."""
    killed = audit(
        tmp_path / "a.jsonl", started("r1"), sending("r1", "alice"), sending("r1", "bob")
    )
    later = audit(
        tmp_path / "b.jsonl",
        started("r2"),
        row("r2", "bob", Outcome.DUPLICATE, attempts=0, source="u.csv:7"),
        row("r2", "alice", Outcome.NOT_FOUND, code="ERR_UID_NOT_FOUND", status=404),
        finished("r2"),
    )
    report = build_report([killed, later])
    assert report.unknown == ("bob",)
    assert report.uids["alice"].outcome is Outcome.NOT_FOUND


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """An unterminated last line from a kill is skipped, not an error."""
    path = audit(tmp_path / "audit.jsonl", started("r1"), row("r1", "alice", Outcome.DELETED))
    with path.open("ab") as handle:
        handle.write(encode(row("r1", "bob", Outcome.DELETED))[:30])
    report = build_report([path])
    assert list(report.uids) == ["alice"]
    assert report.runs[0].status == "killed"


def test_corrupt_middle_line_raises_with_its_number(tmp_path: Path) -> None:
    """A line that is not JSON before the last one is an AuditError naming the line."""
    path = audit(tmp_path / "audit.jsonl", started("r1"))
    with path.open("ab") as handle:
        handle.write(b'{"ts": "2026\n')
        handle.write(encode(finished("r1")) + b"\n")
    with pytest.raises(AuditError) as caught:
        build_report([path])
    assert (caught.value.path, caught.value.line) == (str(path), 2)


def test_file_without_run_started_is_not_an_audit(tmp_path: Path) -> None:
    """An empty file, or lines of a run that never started, is refused."""
    empty = audit(tmp_path / "empty.jsonl")
    with pytest.raises(AuditError, match="no run_started line") as caught:
        build_report([empty])
    assert caught.value.line is None
    orphan = audit(tmp_path / "orphan.jsonl", row("r9", "alice", Outcome.DELETED))
    with pytest.raises(AuditError, match="'r9' has no run_started") as caught:
        build_report([orphan])
    assert caught.value.line == 1


def test_row_line_missing_a_field_raises_with_its_number(tmp_path: Path) -> None:
    """A row line without a field the report needs is an AuditError, not a crash."""
    broken = row("r1", "alice", Outcome.DELETED)
    del broken["attempts"]
    path = audit(tmp_path / "audit.jsonl", started("r1"), broken)
    with pytest.raises(AuditError, match="KeyError") as caught:
        build_report([path])
    assert caught.value.line == 2


def test_unknown_events_and_fields_are_ignored(tmp_path: Path) -> None:
    """Records and fields a later version adds change nothing."""
    path = audit(
        tmp_path / "audit.jsonl",
        {**started("r1"), "prev": "abc"},
        {"ts": T1, "run_id": "r1", "event": "checkpoint", "prev": "def"},
        {**row("r1", "alice", Outcome.DELETED), "prev": "ghi"},
        finished("r1", requests=1, deleted=1),
    )
    report = build_report([path])
    assert report.uids["alice"].outcome is Outcome.DELETED
    assert report.runs[0].status == "completed"


def test_an_event_of_a_later_version_without_a_run_is_ignored_too(tmp_path: Path) -> None:
    """A later version's event that names no run changes nothing either."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        {"event": "heartbeat"},
        row("r1", "alice", Outcome.DELETED),
    )
    assert build_report([path]).uids["alice"].outcome is Outcome.DELETED


def test_a_sent_row_without_its_uid_names_its_line(tmp_path: Path) -> None:
    """A deleted row with no normalised_uid is refused at its line, not counted as a UID."""
    path = audit(tmp_path / "audit.jsonl", started("r1"), {**row("r1", "a", Outcome.DELETED)}
                 | {"normalised_uid": None})  # fmt: skip
    with pytest.raises(AuditError, match="names no normalised_uid") as caught:
        build_report([path])
    assert caught.value.line == 2


def test_failures_are_grouped_by_error_code(tmp_path: Path) -> None:
    """Failed UIDs count under their code, "HTTP n" with only a status, TRANSPORT with neither."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "a", Outcome.FAILED, code="ERR_BAD", status=400),
        row("r1", "b", Outcome.FAILED, code="ERR_BAD", status=400),
        row("r1", "c", Outcome.FAILED, code="TIMEOUT"),
        row("r1", "d", Outcome.FAILED, status=418),
        row("r1", "e", Outcome.FAILED),
        row("r1", "f", Outcome.FAILED, code="ERR_BAD", status=400),
        row("r1", "f", Outcome.DELETED, status=200),
        finished("r1"),
    )
    report = build_report([path])
    assert report.failures_by_code == {"ERR_BAD": 2, "HTTP 418": 1, "TIMEOUT": 1, TRANSPORT: 1}
    assert report.totals["failed"] == 5


def test_not_found_in_a_permanent_run_is_listed_apart(tmp_path: Path) -> None:
    """Not-found UIDs of permanent runs may be merely deactivated, so they are listed."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1", permanent=True),
        row("r1", "gone", Outcome.NOT_FOUND, code="ERR_UID_NOT_FOUND", permanent=True),
        row("r1", "erased", Outcome.DELETED, permanent=True),
        finished("r1"),
        started("r2"),
        row("r2", "soft", Outcome.NOT_FOUND, code="ERR_UID_NOT_FOUND"),
        finished("r2"),
    )
    report = build_report([path])
    assert report.not_found_in_permanent == ("gone",)
    assert "WARNING: 1 UIDs were not found by a permanent run" in report_text(report)


def test_failed_csv_reads_back_as_exactly_the_failed_uids(tmp_path: Path) -> None:
    """The failed-UID export is an input ``bulkdelete delete`` accepts, with only failed UIDs."""
    report = one_failed_run(tmp_path)
    out = tmp_path / "failed.csv"
    assert write_failed_csv(report, out) == 2
    assert (
        out.read_bytes()
        == b"uid,error_code,http_status,last_run\nalice,ERR_X,400,r1\ncarol,TIMEOUT,,r1\n"
    )
    sources = [Source.file(out)]
    assert scan(sources, column=None).rows == 2
    assert list(read_rows(sources, column=None)) == [
        Row(f"{out}:2", "alice", "alice", None),
        Row(f"{out}:3", "carol", "carol", None),
    ]


def test_failed_csv_leaves_out_unknown_state_uids(tmp_path: Path) -> None:
    """Only UIDs whose latest state is failed are exported; an empty export is just a header."""
    path = audit(tmp_path / "audit.jsonl", started("r1"), sending("r1", "alice"))
    out = tmp_path / "failed.csv"
    assert write_failed_csv(build_report([path]), out) == 0
    assert out.read_text(encoding="utf-8") == "uid,error_code,http_status,last_run\n"


def test_json_report_parses_and_holds_the_same_facts(tmp_path: Path) -> None:
    """The JSON document has every run, the totals, failures and each unknown UID."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "alice", Outcome.FAILED, code="ERR_X", status=400),
        *(sending("r1", f"u{n:02d}") for n in range(25)),
    )
    report = build_report([path])
    document = json.loads(report_json(report))
    assert document == {
        "runs": [
            {
                "run_id": "r1",
                "started": T0,
                "finished": None,
                "status": "killed",
                "permanent": False,
                "target": "app-1",
                "requests": 1,
                "duration_seconds": 5.5,
                "rate": 0.182,
                "totals": {
                    "deleted": 0,
                    "not_found": 0,
                    "failed": 1,
                    "invalid": 0,
                    "duplicate": 0,
                    "already_deactivated": 0,
                },
                "fatal_code": None,
                "audit": str(path),
                "operator": None,
                "inputs": [],
                "streams_read": [],
                "resumed": False,
                "restart_of": None,
                "skipped": None,
                "unsent": None,
                "unanswered": None,
                "unread": None,
            }
        ],
        "uids_with_outcome": 1,
        "totals": {
            "deleted": 0,
            "not_found": 0,
            "failed": 1,
            "invalid": 0,
            "duplicate": 0,
            "already_deactivated": 0,
        },
        "invalid_rows": 0,
        "duplicate_rows": 0,
        "failures_by_code": {"ERR_X": 1},
        "unknown": [f"u{n:02d}" for n in range(25)],
        "not_found_in_permanent": [],
        "absent_confirmed": 0,
        "deactivated_by": {},
        "read_back": {},
    }
    assert report_json(report) == report_json(build_report([path]))


def test_text_report_shows_the_key_facts(tmp_path: Path) -> None:
    """The text report has the runs table, totals, failures and a capped unknown-UID list."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "alice", Outcome.FAILED, code="ERR_X", status=400),
        row("r1", "bob", Outcome.DELETED, status=200, source="u.csv:3"),
        finished("r1", requests=12, duration=4.0, deleted=1, failed=1),
        started("r2", ts=T2),
        *(sending("r2", f"u{n:02d}", ts=T3) for n in range(23)),
    )
    text = report_text(build_report([path]))
    lines = text.splitlines()
    assert lines[0] == "2 runs, 2 UIDs with an outcome"
    assert lines[2].split() == [
        "run", "id", "status", "started", "duration", "requests", "rate/s", "permanent"
    ]  # fmt: skip
    assert lines[3].split() == ["r1", "completed", T0, "4.0", "s", "12", "3.0", "no"]
    assert lines[4].split() == ["r2", "killed", T2, "60.0", "s", "0", "0.0", "no"]
    assert "  deleted                 1" in lines
    assert "  failed                  1" in lines
    assert "  unknown state          23" in lines
    assert any(line.split() == ["ERR_X", "1"] for line in lines)
    assert "23 UIDs in unknown state" in text
    assert "  u19" in lines
    assert "  u20" not in lines
    assert lines[-1] == "  … and 3 more"


def test_same_audit_given_twice_reports_the_same(tmp_path: Path) -> None:
    """Naming one audit twice neither doubles its runs nor its counts."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1"),
        row("r1", "alice", Outcome.DELETED, attempts=2),
        row("r1", None, Outcome.INVALID, attempts=0, source="u.csv:3"),
        sending("r1", "bob"),
    )
    assert build_report([path, path]) == build_report([path])


def probed(run_id: str, *, absent: tuple[str, ...] = (), deactivated: tuple[str, ...] = ()) -> Any:
    return line_of(Probed(ts=T1, run_id=run_id, absent=absent, deactivated=deactivated))


def test_a_not_found_the_probe_confirmed_absent_is_not_unproven(tmp_path: Path) -> None:
    """A permanent run's not_found after a probe that named it absent is confirmed; one with no
    probe line (an older audit), or whose later line no probe confirmed, stays unproven."""
    code, status = "ERR_UID_NOT_FOUND", 404
    path = audit(
        tmp_path / "audit.jsonl",
        started("r1", permanent=True),
        probed("r1", absent=("ann", "bob")),
        row("r1", "ann", Outcome.NOT_FOUND, code=code, status=status, permanent=True),
        row("r1", "cid", Outcome.NOT_FOUND, code=code, status=status, permanent=True),
        row("r1", "bob", Outcome.NOT_FOUND, code=code, status=status, permanent=True),
        finished("r1", not_found=3),
        started("r2", permanent=True, ts=T2),
        row("r2", "bob", Outcome.NOT_FOUND, code=code, status=status, permanent=True, ts=T2),
        finished("r2", not_found=1),
    )

    report = build_report([path])

    assert (report.absent, report.not_found_in_permanent) == (frozenset({"ann"}), ("bob", "cid"))
    assert "1 UIDs not found by a permanent run are absent" in report_text(report)
    assert json.loads(report_json(report))["absent_confirmed"] == 1


def test_report_names_the_soft_run_that_deactivated_a_user_not_erased(tmp_path: Path) -> None:
    """A UID a soft run deleted (deactivated), then not found or failed by a permanent run, is
    named with that soft run; one a permanent run erased since is not."""
    soft = audit(
        tmp_path / "soft.jsonl",
        started("soft"),
        row("soft", "ann", Outcome.DELETED, status=200),
        row("soft", "bob", Outcome.DELETED, status=200, source="users.csv:3"),
        row("soft", "cid", Outcome.DELETED, status=200, source="users.csv:4"),
        finished("soft", deleted=3),
    )
    hard = audit(
        tmp_path / "hard.jsonl",
        started("hard", permanent=True, ts=T2),
        row("hard", "ann", Outcome.FAILED, code="DEACTIVATED_NOT_ERASED", status=404,
            permanent=True, ts=T2),
        row("hard", "bob", Outcome.NOT_FOUND, code="ERR_UID_NOT_FOUND", status=404,
            permanent=True, ts=T2, source="users.csv:3"),
        row("hard", "cid", Outcome.DELETED, status=200, permanent=True, ts=T2,
            source="users.csv:4"),
        finished("hard", failed=1, not_found=1, deleted=1),
    )  # fmt: skip

    report = build_report([soft, hard])

    assert report.deactivated_by == {"ann": "soft", "bob": "soft"}
    text = report_text(report)
    assert "ann (deactivated by run soft)" in text
    assert "cid (deactivated" not in text
    assert json.loads(report_json(report))["deactivated_by"] == {"ann": "soft", "bob": "soft"}
    alone = build_report([hard])
    assert (alone.deactivated_by, "deactivated by run" in report_text(alone)) == ({}, False)
