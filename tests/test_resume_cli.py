"""Nothing lost: kill -9, SIGTERM and torn tails, then --resume, with real processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import (
    FakeFactory,
    FakeProcess,
    audit_lines,
    cli_env,
    pipe_into_cli,
    row_records,
    run_cli,
    wait_for_outcomes,
    wait_until_applied,
)

UIDS = [f"member-{n:04d}" for n in range(600)]
CONCURRENCY = 8


def _input(tmp_path: Path, uids: list[str] = UIDS) -> Path:
    source = tmp_path / "erase.csv"
    rows = ["uid,email"] + [f"{uid},{uid}@example.com" for uid in uids]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return source


def _delete_args(server: FakeProcess, source: Path, audit: Path) -> list[str]:
    return [
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--concurrency", str(CONCURRENCY), "--rate", "400",
        "--batch-size", "1",  # kills land between single DELETEs; batches: test_batch_cli.py
    ]  # fmt: skip


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
    )


def _final_lines_per_uid(audit: Path) -> Counter[str]:
    return Counter(
        r["normalised_uid"] for r in row_records(audit) if r["outcome"] in {"deleted", "not_found"}
    )


def test_two_kill9s_then_resume_keep_the_invariant(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Killed twice with SIGKILL and resumed: every UID ends with exactly one final line."""
    server = fake_server("--latency", "0.02", users=UIDS)
    source, audit = _input(tmp_path), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)

    for stop_after in (150, 380):
        process = _start([*args, "--resume"] if audit.exists() else args)
        wait_for_outcomes(audit, stop_after)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    done = run_cli(*args, "--resume")

    assert done.returncode == 0, done.stdout + done.stderr
    assert _final_lines_per_uid(audit) == Counter(UIDS)
    stats = server.stats()
    assert set(stats["applied"]) == set(UIDS)
    resent = sum(stats["deletes_by_uid"].values()) - len(UIDS)
    assert resent <= 2 * CONCURRENCY  # at most what was in flight at each kill
    for record in row_records(audit):
        if record["outcome"] == "not_found":
            assert "probably deleted it" in record["note"]


def test_sigterm_then_resume_sends_nothing_twice(fake_server: FakeFactory, tmp_path: Path) -> None:
    """SIGTERM: exit 143 within seconds, a whole audit, and a resume that resends no UID."""
    server = fake_server("--latency", "0.02", users=UIDS)
    source, audit = _input(tmp_path), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)
    process = _start(args)
    wait_for_outcomes(audit, 200)

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 143
    stopped_in = time.monotonic() - signalled
    assert audit_lines(audit)[-1]["status"] == "interrupted"
    done = run_cli(*args, "--resume")

    assert done.returncode == 0, done.stdout + done.stderr
    assert stopped_in < 10
    assert _final_lines_per_uid(audit) == Counter(UIDS)
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(UIDS, 1)


def test_resume_after_a_torn_last_line(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A half-written last line is cut off, never glued to the next record."""
    server = fake_server(users=UIDS[:50])
    source, audit = _input(tmp_path, UIDS[:50]), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)
    first = run_cli(*args)
    assert first.returncode == 0
    lines = audit.read_bytes().splitlines(keepends=True)
    # Keep the first 20 outcomes and half of the 21st line, as a kill mid-write would.
    kept = b"".join(lines[:21]) + lines[21][: len(lines[21]) // 2]
    audit.write_bytes(kept)

    done = run_cli(*args, "--resume")

    assert done.returncode == 0, done.stdout + done.stderr
    records = audit_lines(audit)  # every line parses
    resumed = [r for r in records if r.get("event") == "run_started"][-1]
    assert resumed["repaired_torn_tail_bytes"] == len(lines[21]) // 2
    assert _final_lines_per_uid(audit) == Counter(UIDS[:50])


def test_resume_recognises_the_input_by_content_not_path(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Invalid and duplicate rows already audited are not audited again under another path."""
    server = fake_server(users=UIDS[:10])
    source = tmp_path / "in.csv"
    source.write_text(
        "uid\n" + "\n".join([*UIDS[:10], "bad/one", UIDS[0]]) + "\n", encoding="utf-8"
    )
    audit = tmp_path / "audit.jsonl"
    first = run_cli(*_delete_args(server, source, audit))
    assert first.returncode == 1
    moved = tmp_path / "moved.csv"
    moved.write_bytes(source.read_bytes())

    again = run_cli(*_delete_args(server, moved, audit), "--resume")

    assert again.returncode == 0, again.stdout + again.stderr
    outcomes = Counter(r["outcome"] for r in row_records(audit))
    assert outcomes == {"deleted": 10, "invalid": 1, "duplicate": 1}


@pytest.mark.parametrize("flip", [["--permanent", "--yes"], []])
def test_resume_refuses_a_different_permanent_choice(
    fake_server: FakeFactory, tmp_path: Path, flip: list[str]
) -> None:
    """A deactivation run cannot be resumed as an erasure, nor the other way round."""
    server = fake_server(users=UIDS[:5])
    source, audit = _input(tmp_path, UIDS[:5]), tmp_path / "audit.jsonl"
    first_flags = [] if flip else ["--permanent", "--yes"]
    assert run_cli(*_delete_args(server, source, audit), *first_flags).returncode == 0
    before = audit.read_bytes()

    done = run_cli(*_delete_args(server, source, audit), *flip, "--resume")

    assert done.returncode == 2
    assert "--permanent" in done.stderr
    assert audit.read_bytes() == before


@pytest.mark.parametrize(
    ("resume_key", "message"),
    [("", "set the same key"), ("another-key-5678", "not the key the audit's runs used")],
    ids=["no-key", "other-key"],
)
def test_resume_of_a_keyed_audit_needs_its_key(
    fake_server: FakeFactory, tmp_path: Path, resume_key: str, message: str
) -> None:
    """Without the audit's HMAC key, or with another, a resume would break the chain: exit 2."""
    server = fake_server("--latency", "0.02", users=UIDS[:100])
    source, audit = _input(tmp_path, UIDS[:100]), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)
    keyed = cli_env(BULKDELETE_AUDIT_KEY="audit-key-1234")
    first = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=keyed,
    )
    wait_for_outcomes(audit, 20)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 143
    before, sent = audit.read_bytes(), server.stats()["requests"]

    done = run_cli(*args, "--resume", env=cli_env(BULKDELETE_AUDIT_KEY=resume_key))

    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert (audit.read_bytes(), server.stats()["requests"]) == (before, sent)


@pytest.mark.parametrize("command", ["delete", "check"])
def test_no_command_appends_to_a_keyed_audit_without_its_key(
    fake_server: FakeFactory, tmp_path: Path, command: str
) -> None:
    """A plain run or a read-back without the key would add an unkeyed run: exit 2, nothing sent."""
    server = fake_server(users=UIDS[:5])
    source, audit = _input(tmp_path, UIDS[:5]), tmp_path / "audit.jsonl"
    keyed = cli_env(BULKDELETE_AUDIT_KEY="audit-key-1234")
    assert run_cli(*_delete_args(server, source, audit), env=keyed).returncode == 0
    before, sent = audit.read_bytes(), server.stats()["requests"]
    args = {
        "delete": _delete_args(server, source, audit),
        "check": ["check", str(audit), "--base-url", server.base_url],
    }[command]

    done = run_cli(*args)

    assert done.returncode == 2
    assert "chained with BULKDELETE_AUDIT_KEY" in done.stderr
    assert (audit.read_bytes(), server.stats()["requests"]) == (before, sent)


def test_resume_refuses_an_input_the_audit_never_read(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Resuming with other files would recognise no settled row and resend them all: exit 2."""
    server = fake_server(users=UIDS[:10])
    source, audit = _input(tmp_path, UIDS[:10]), tmp_path / "audit.jsonl"
    assert run_cli(*_delete_args(server, source, audit)).returncode == 0
    (tmp_path / "changed").mkdir()
    changed = _input(tmp_path / "changed", ["newcomer", *UIDS[:10]])
    sent = server.stats()["requests"]

    done = run_cli(*_delete_args(server, changed, audit), "--resume")

    assert done.returncode == 2
    assert "no input is one the audit's runs read" in done.stderr
    assert server.stats()["requests"] == sent


def test_a_second_run_on_an_audit_in_use_is_refused(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """An overlapping start on the same audit exits 2 before sending; the first run goes on."""
    server = fake_server("--latency", "0.02", users=UIDS[:200])
    source, audit = _input(tmp_path, UIDS[:200]), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)
    first = _start([*args, "--rate", "50"])  # about 4 s: still running when the second starts
    wait_for_outcomes(audit, 10)

    second = run_cli(*args, "--resume")

    assert second.returncode == 2
    assert "another bulkdelete run is writing this audit" in second.stderr
    assert first.wait(timeout=60) == 0
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(UIDS[:200], 1)
    assert _final_lines_per_uid(audit) == Counter(UIDS[:200])


def test_resume_without_an_audit_is_a_usage_error(tmp_path: Path) -> None:
    """--resume with no --audit, or an audit that does not exist: exit 2."""
    source = _input(tmp_path, UIDS[:3])
    base = ["delete", str(source), "--base-url", "http://127.0.0.1:9/v3", "--resume"]

    without = run_cli(*base)
    missing = run_cli(*base, "--audit", str(tmp_path / "nope.jsonl"))

    assert (without.returncode, missing.returncode) == (2, 2)
    assert "--audit" in without.stderr
    assert "nope.jsonl" in missing.stderr


def test_unknown_state_after_kill_is_named_by_sending_lines(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """After kill -9 the audit shows which UIDs were sent without an outcome."""
    server = fake_server("--latency", "0.3", users=UIDS[:100])
    source, audit = _input(tmp_path, UIDS[:100]), tmp_path / "audit.jsonl"
    process = _start(_delete_args(server, source, audit))
    wait_for_outcomes(audit, 20)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    records = audit_lines(audit)
    sent = {r["normalised_uid"] for r in records if r.get("event") == "sending"}
    finished = {r["normalised_uid"] for r in records if "outcome" in r}
    unknown = sent - finished
    applied = set(server.stats()["applied"])
    assert 0 < len(unknown) <= CONCURRENCY
    assert applied - finished <= unknown  # whatever the server did that the audit lacks is named


def test_a_rerun_after_ctrl_c_is_refused_and_a_restart_keeps_the_evidence(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Run, SIGINT, the same command: exit 2, nothing sent. --restart then sends every row
    again; verify --input passes and report still calls the first run's erasures deleted."""
    uids = UIDS[:300]
    server = fake_server("--latency", "0.02", users=uids)
    source = tmp_path / "erase.csv"
    rows = ["uid", "bad/one", uids[0].upper(), *uids]  # an invalid and a duplicate row first
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    args = [*_delete_args(server, source, audit), "--permanent", "--yes"]
    first = _start(args)
    wait_for_outcomes(audit, 60)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=15) == 130
    before, sent = audit.read_bytes(), server.stats()["requests"]

    again = run_cli(*args)

    assert again.returncode == 2
    assert "--resume" in again.stderr
    assert "--restart" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert (audit.read_bytes(), server.stats()["requests"]) == (before, sent)

    restart = run_cli(*args, "--restart")
    verified = run_cli("verify", str(audit), "--input", str(source))
    report = json.loads(run_cli("report", str(audit), "--json").stdout)

    assert restart.returncode == 1, restart.stdout + restart.stderr  # 1: the invalid row
    starts = [r for r in audit_lines(audit) if r.get("event") == "run_started"]
    assert [(s["resumed"], s["restart_of"]) for s in starts] == [
        (False, None),
        (False, starts[0]["run_id"]),
    ]
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.startswith("PASS")
    assert report["totals"]["deleted"] == len(uids)
    assert (report["totals"]["not_found"], report["not_found_in_permanent"]) == (0, [])
    assert set(server.stats()["applied"]) == set(uids)


def test_only_the_last_run_decides_whether_a_plain_run_may_follow(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """After kill -9 a plain run is refused; once a --resume completed the job, the next plain
    run (say, the next list into the same audit) goes ahead."""
    server = fake_server("--latency", "0.02", users=UIDS[:150])
    source, audit = _input(tmp_path, UIDS[:100]), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)
    killed = _start(args)
    wait_for_outcomes(audit, 20)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)

    refused = run_cli(*args)
    resumed = run_cli(*args, "--resume")
    (tmp_path / "next").mkdir()
    later = run_cli(*_delete_args(server, _input(tmp_path / "next", UIDS[100:150]), audit))

    assert refused.returncode == 2
    assert "was killed" in refused.stderr
    assert (resumed.returncode, later.returncode) == (0, 0), resumed.stderr + later.stderr
    assert set(server.stats()["applied"]) == set(UIDS[:150])


def test_restart_refuses_what_resume_refuses_and_resume_with_it(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--restart with --resume, with no audit, or with the other --permanent choice: exit 2."""
    server = fake_server(users=UIDS[:5])
    source, audit = _input(tmp_path, UIDS[:5]), tmp_path / "audit.jsonl"
    args = _delete_args(server, source, audit)
    assert run_cli(*args).returncode == 0
    sent = server.stats()["requests"]
    cases = {
        "both": ([*args, "--resume", "--restart"], "not both"),
        "no-audit": (["delete", str(source), "--base-url", server.base_url, "--restart"],
                     "--restart needs --audit"),
        "missing": ([*_delete_args(server, source, tmp_path / "nope.jsonl"), "--restart"],
                    "--restart: there is no audit at"),
        "permanent": ([*args, "--restart", "--permanent", "--yes"], "same --permanent choice"),
    }  # fmt: skip

    for name, (command, message) in cases.items():
        done = run_cli(*command)
        assert (name, done.returncode) == (name, 2)
        assert message in done.stderr, (name, done.stderr)
    assert server.stats()["requests"] == sent


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_stdin_run_stopped_mid_stream_resumes_and_verifies(
    fake_server: FakeFactory, tmp_path: Path, signum: int
) -> None:
    """Stopped while its producer still writes, resumed with the whole list on stdin: every row
    is settled once, nothing is sent twice, and verify --input passes with the list only."""
    uids = [f"streamed-{n:03d}" for n in range(30)]
    read_first = [*uids[:10], "bad/one", uids[0].upper()]  # an invalid and a duplicate row
    lines = read_first + uids[10:]
    server = fake_server(users=uids)
    audit, listed = tmp_path / "audit.jsonl", tmp_path / "list.txt"
    listed.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    args = ["delete", "-", "--base-url", server.base_url, "--audit", str(audit), "--no-progress",
            "--batch-size", "1"]  # fmt: skip
    piped = pipe_into_cli(server.base_url, [*read_first, "<hang>"], *args)
    try:
        wait_until_applied(server, uids[:10])
        wait_for_outcomes(audit, len(read_first))
        signalled = time.monotonic()
        piped.bulkdelete.send_signal(signum)
        assert piped.bulkdelete.wait(timeout=15) in {143, -signal.SIGKILL}
        stopped_in = time.monotonic() - signalled
    finally:
        piped.stop()
    assert stopped_in < 5  # nothing in flight: no need to wait out the 10 s grace

    done = run_cli(*args, "--resume", stdin=listed.read_text(encoding="utf-8"))
    verified = run_cli("verify", str(audit), "--input", str(listed))
    other = tmp_path / "other.txt"  # the same lines in another order: not what the runs read
    other.write_text("".join(f"{line}\n" for line in reversed(lines)), encoding="utf-8")
    refuted = run_cli("verify", str(audit), "--input", str(other))

    assert done.returncode == 0, done.stdout + done.stderr
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(uids, 1)
    assert _final_lines_per_uid(audit) == Counter(uids)
    outcomes = Counter(r["outcome"] for r in row_records(audit))
    assert (outcomes["invalid"], outcomes["duplicate"]) == (1, 1)
    reads = [r for r in audit_lines(audit) if r.get("event") == "input_read"]
    assert reads[-1]["complete"] is True
    if signum == signal.SIGTERM:  # a stopped run says how much of the stream it read
        first = reads[0]
        data = listed.read_bytes()[: first["bytes"]]
        assert (first["complete"], first["sha256"]) == (False, hashlib.sha256(data).hexdigest())
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.startswith("PASS"), verified.stdout
    assert refuted.returncode == 1
    assert "is not what this run read: - (sha256" in refuted.stdout
