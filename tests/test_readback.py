"""Read-back: `bulkdelete check` and `delete --verify-deleted`, against the fake server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from helpers import FakeFactory, audit_lines, run_cli

USERS = [f"reader-{n}" for n in range(12)]


def _input(tmp_path: Path) -> Path:
    source = tmp_path / "in.txt"
    source.write_text("\n".join([*USERS, "never-existed"]) + "\n", encoding="utf-8")
    return source


def test_check_confirms_deleted_users_are_gone(fake_server: FakeFactory, tmp_path: Path) -> None:
    """After a run, `check` reads each deleted UID back, finds none, and appends read_back lines."""
    server = fake_server(users=USERS)
    audit = tmp_path / "audit.jsonl"
    assert run_cli("delete", str(_input(tmp_path)), "--base-url", server.base_url,
                   "--audit", str(audit)).returncode == 0  # fmt: skip

    done = run_cli("check", str(audit))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 gone, 0 still returned" in done.stdout
    read_backs = [r for r in audit_lines(audit) if r.get("event") == "read_back"]
    assert sorted(r["normalised_uid"] for r in read_backs) == sorted(USERS)
    assert {r["result"] for r in read_backs} == {"gone"}
    events = [r.get("event") for r in audit_lines(audit)]
    assert events.index("check_started") < events.index("check_finished")


def test_check_names_users_still_returned(fake_server: FakeFactory, tmp_path: Path) -> None:
    """Read back against a server where the users still exist: exit 1 and their UIDs listed."""
    deleting = fake_server(users=USERS)
    untouched = fake_server(users=USERS)
    audit = tmp_path / "audit.jsonl"
    run_cli("delete", str(_input(tmp_path)), "--base-url", deleting.base_url, "--audit", str(audit))

    done = run_cli("check", str(audit), "--base-url", untouched.base_url)

    assert done.returncode == 1
    assert "0 gone, 12 still returned" in done.stdout
    assert "reader-0" in done.stdout
    results = Counter(r["result"] for r in audit_lines(audit) if r.get("event") == "read_back")
    assert results == {"present": 12}


def test_verify_deleted_reads_back_after_the_run(fake_server: FakeFactory, tmp_path: Path) -> None:
    """--verify-deleted checks the UIDs this run deleted, right after it, with one GET each."""
    server = fake_server(users=USERS)
    audit = tmp_path / "audit.jsonl"

    done = run_cli("delete", "--batch-size", "1",
                   str(_input(tmp_path)), "--base-url", server.base_url,
                   "--audit", str(audit), "--verify-deleted")  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 gone" in done.stdout
    stats = server.stats()
    assert stats["status_counts"]["404"] == 1 + 12  # never-existed, then the 12 read-backs


def test_check_lines_keep_report_and_verify_working(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A read-back appended to an audit is reported, and verify still passes over it."""
    server = fake_server(users=USERS)
    source, audit = _input(tmp_path), tmp_path / "audit.jsonl"
    run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
            "--verify-deleted")  # fmt: skip

    report = run_cli("report", str(audit))
    verify = run_cli("verify", str(audit), "--input", str(source))

    assert report.returncode == 0, report.stderr
    assert "read back (bulkdelete check, latest per UID): gone 12" in report.stdout
    assert verify.returncode == 0, verify.stdout
    assert verify.stdout.startswith("PASS")
