"""The real CLI, as a subprocess, against the fake CometChat server over loopback."""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import (
    API_KEY,
    FakeFactory,
    audit_lines,
    cli_env,
    row_records,
    run_cli,
    wait_for_outcomes,
)

from bulkdelete.outcome import Outcome

EXISTING = [f"user-{n:03d}" for n in range(40)]
MISSING = [f"gone-{n:03d}" for n in range(10)]


def _csv(path: Path, uids: Sequence[str], *, extra: Sequence[str] = ()) -> Path:
    lines = ["uid,email,requested_at"]
    lines += [f"{uid},{uid}@example.com,2026-11-01T00:00:00Z" for uid in uids]
    lines += list(extra)
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def test_partly_existing_csv_audits_every_row_once(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Every row gets one audit line with the right outcome; each valid UID is sent exactly once."""
    server = fake_server("--latency", "0.01", users=EXISTING)
    rows = [u.upper() if n % 7 == 0 else u for n, u in enumerate(EXISTING + MISSING)]
    bad = ["../etc,x@example.com,", "a/b,y@example.com,", "=cmd(),z@example.com,"]
    dup = [f"{EXISTING[3].upper()},dup@example.com,"]
    source = _csv(tmp_path / "in.csv", rows, extra=bad + dup)
    audit = tmp_path / "audit.jsonl"

    done = run_cli(
        "delete",
        "--batch-size",
        "1",
        str(source),
        "--base-url",
        server.base_url,
        "--audit",
        str(audit),
    )

    records = row_records(audit)
    outcomes = Counter(r["outcome"] for r in records)
    assert outcomes == {"deleted": 40, "not_found": 10, "invalid": 3, "duplicate": 1}
    assert sorted(r["source"] for r in records) == sorted(
        f"{source}:{n}" for n in range(2, 2 + len(rows) + len(bad) + len(dup))
    )
    assert done.returncode == 1  # invalid rows make the run incomplete
    stats = server.stats()
    assert stats["deletes_by_uid"] == dict.fromkeys(EXISTING + MISSING, 1)
    assert stats["unmatched_paths"] == 0
    by_uid = {r["uid"]: r for r in records}
    assert by_uid["USER-000"]["outcome"] == "deleted"
    assert by_uid["gone-000"]["error_code"] == "ERR_UID_NOT_FOUND"
    assert by_uid["../etc"]["reason"] == "path separator or traversal"


def test_stdin_run_matches_file_run(fake_server: FakeFactory, tmp_path: Path) -> None:
    """UIDs piped on stdin are deleted and audited with source '-:<line>'."""
    server = fake_server(users=EXISTING)
    audit = tmp_path / "audit.jsonl"

    done = run_cli(
        "delete",
        "--base-url",
        server.base_url,
        "--audit",
        str(audit),
        stdin="\n".join(EXISTING[:10] + MISSING[:2]) + "\n",
    )

    assert done.returncode == 0, done.stderr
    records = row_records(audit)
    assert Counter(r["outcome"] for r in records) == {"deleted": 10, "not_found": 2}
    assert {r["source"] for r in records} == {f"-:{n}" for n in range(1, 13)}
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(EXISTING[:10] + MISSING[:2], 1)


@pytest.mark.parametrize("permanent", [True, False])
def test_permanent_flag_is_sent_as_chosen(
    fake_server: FakeFactory, tmp_path: Path, permanent: bool
) -> None:
    """--permanent sends {"permanent": true}; without it every request says false."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:8])
    flags = ["--permanent", "--yes"] if permanent else []
    audit = tmp_path / "audit.jsonl"

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit), *flags
    )

    assert done.returncode == 0, done.stderr
    assert server.stats()["permanent_flags"] == {u: [permanent] for u in EXISTING[:8]}
    assert {r["permanent"] for r in row_records(audit)} == {permanent}


def test_concurrency_is_never_exceeded(fake_server: FakeFactory, tmp_path: Path) -> None:
    """With slow answers the server never sees more requests at once than --concurrency."""
    server = fake_server("--all-exist", "--latency", "0.05")
    source = _csv(tmp_path / "in.csv", [f"u{n}" for n in range(60)])

    done = run_cli(
        "delete", "--batch-size", "1",
        str(source), "--base-url", server.base_url, "--audit", str(tmp_path / "a.jsonl"),
        "--concurrency", "4", "--rate", "1000",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert server.stats()["max_in_flight"] == 4


def test_429_pauses_the_whole_run(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A fixed window that is too small is met with a run-wide pause, not a storm of retries."""
    server = fake_server("--all-exist", "--limit", "15", "--window", "1")
    source = _csv(tmp_path / "in.csv", [f"u{n}" for n in range(40)])
    audit = tmp_path / "a.jsonl"

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--concurrency", "8", "--rate", "500",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert Counter(r["outcome"] for r in row_records(audit)) == {"deleted": 40}
    stats = server.stats()
    # Only requests already in flight when the first 429 arrived can be refused per window.
    assert stats["rejected_over_limit"] <= 8 * 3
    assert len(stats["applied"]) == 40


def test_fault_storm_ends_with_every_uid_final(fake_server: FakeFactory, tmp_path: Path) -> None:
    """5xx, 429, resets and dropped answers (20% in all): every UID still ends deleted."""
    uids = [f"storm-{n}" for n in range(150)]
    server = fake_server(
        "--seed", "7", "--fail-rate", "0.08", "--throttle-rate", "0.04", "--reset-rate", "0.04",
        "--drop-rate", "0.04", "--fault-retry-after", "0.05", users=uids,
    )  # fmt: skip
    source = _csv(tmp_path / "in.csv", uids)
    audit = tmp_path / "a.jsonl"

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--max-attempts", "12", "--rate", "1000",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr + done.stdout
    records = row_records(audit)
    assert len(records) == 150
    assert {r["outcome"] for r in records} <= {"deleted", "not_found"}
    assert max(r["attempts"] for r in records) > 1
    not_found = [r for r in records if r["outcome"] == "not_found"]
    # Every UID existed, so a not-found means an earlier dropped request had deleted it.
    assert all(r["note"] for r in not_found)
    assert set(server.stats()["applied"]) == set(uids)


def test_bad_key_aborts_with_exit_3_and_no_deletes(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A key the server rejects (as a 404!) stops the run before any DELETE, with exit 3."""
    server = fake_server(users=EXISTING, key="the-real-key")
    source = _csv(tmp_path / "in.csv", EXISTING)
    audit = tmp_path / "a.jsonl"

    done = run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit))

    assert done.returncode == 3
    assert "AUTH_ERR_APIKEY_NOT_FOUND" in done.stdout
    assert server.stats()["deletes_by_uid"] == {}
    assert row_records(audit) == []


def test_key_revoked_mid_run_stops_within_the_in_flight_window(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A fatal answer mid-run stops it at once: at most the requests in flight follow it."""
    server = fake_server("--all-exist", "--revoke-key-after", "20")
    source = _csv(tmp_path / "in.csv", [f"u{n}" for n in range(300)])
    audit = tmp_path / "a.jsonl"

    done = run_cli(
        "delete", "--batch-size", "1",
        str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--concurrency", "5", "--rate", "1000",
    )  # fmt: skip

    assert done.returncode == 3
    records = row_records(audit)
    assert Counter(r["outcome"] for r in records)["deleted"] == 20
    assert len(records) <= 20 + 5
    assert not any(r["outcome"] == "not_found" for r in records)
    assert sum(server.stats()["deletes_by_uid"].values()) <= 20 + 5


def test_the_key_never_appears_in_any_output(fake_server: FakeFactory, tmp_path: Path) -> None:
    """Debug logs, stdout, stderr and the audit never contain the API key, even on errors."""
    server = fake_server("--seed", "3", "--fail-rate", "0.3", "--reset-rate", "0.1", users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:20], extra=["bad/uid,,"])
    audit = tmp_path / "a.jsonl"

    done = run_cli(
        "delete", "--batch-size", "1",
        str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--log-level", "debug", "--max-attempts", "8", "--rate", "1000",
    )  # fmt: skip

    assert done.returncode == 1
    assert "retry_scheduled" in done.stderr  # debug logs were really written
    for text in (done.stdout, done.stderr, audit.read_text(encoding="utf-8")):
        assert API_KEY not in text


def test_dry_run_sends_nothing(fake_server: FakeFactory, tmp_path: Path) -> None:
    """--dry-run validates and counts but makes no request and writes no audit."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:5], extra=["a b,,", EXISTING[0] + ",,"])
    audit = tmp_path / "a.jsonl"

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit), "--dry-run"
    )

    assert done.returncode == 0, done.stderr
    assert "valid 5, invalid 1, duplicate 1" in done.stdout
    assert server.stats()["requests"] == 0
    assert not audit.exists()


@pytest.mark.parametrize(
    ("args", "env_key", "message"),
    [
        (["--rate", "0"], API_KEY, "--rate must be a finite number above 0"),
        (["--rate", "inf"], API_KEY, "--rate must be a finite number above 0"),
        (["--timeout", "inf"], API_KEY, "--timeout must be a finite number"),
        ([], API_KEY + "\rX", "no HTTP header can carry"),
        (["--max-attempts", "99999999999999999999"], API_KEY, "--max-attempts must be between"),
        (["--dry-run", "--max-deletes", "2"], API_KEY, "more than --max-deletes 2"),
        (["--concurrency", "0"], API_KEY, "--concurrency must be between"),
        (["--bogus"], API_KEY, "No such option"),
        ([], "", "no API key"),
        (["--column", "email_address"], API_KEY, "email_address"),
        (["--permanent"], API_KEY, "--yes"),
        (["-", "-"], API_KEY, "stdin (-) can be read only once"),
        (["--column", "uid", "--no-header"], API_KEY, "--no-header says there is none"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_and_send_nothing(
    fake_server: FakeFactory, tmp_path: Path, args: list[str], env_key: str, message: str
) -> None:
    """Bad flags, a missing key, a missing column and an unconfirmed permanent run: exit 2."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:5])

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(tmp_path / "a.jsonl"),
        *args, env=cli_env(COMETCHAT_API_KEY=env_key),
    )  # fmt: skip

    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert server.stats()["requests"] == 0


def test_an_app_id_that_is_not_one_host_label_exits_2_before_any_request(tmp_path: Path) -> None:
    """--app-id 'x@127.0.0.1:PORT/' would aim the key at another host: exit 2, one line."""
    source = _csv(tmp_path / "in.csv", EXISTING[:2])
    audit = tmp_path / "a.jsonl"

    done = run_cli(
        "delete", str(source), "--app-id", "x@127.0.0.1:9/", "--audit", str(audit),
        env=cli_env(COMETCHAT_API_KEY=API_KEY),
    )  # fmt: skip

    assert done.returncode == 2
    assert "app id" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not audit.exists()


@pytest.mark.parametrize(
    ("tail", "message"),
    [(b"user-2\x00\n", "NUL byte"), (b"\xff\xfeuser\n", "UTF-8")],
)
def test_binary_and_non_utf8_files_are_refused_whole(
    fake_server: FakeFactory, tmp_path: Path, tail: bytes, message: str
) -> None:
    """Garbage after 50 good rows: exit 2, one line naming file and line, nothing sent."""
    server = fake_server(users=EXISTING)
    source = tmp_path / "in.txt"
    source.write_bytes(b"user-000\n" * 50 + tail)

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(tmp_path / "a")
    )

    assert done.returncode == 2
    assert message in done.stderr
    assert f"{source}:51" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert server.stats()["requests"] == 0


def test_input_without_rows_is_refused(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A file of blank lines: exit 2, nothing sent."""
    server = fake_server(users=EXISTING)
    source = tmp_path / "in.txt"
    source.write_bytes(b"\n\n  \r\n")

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(tmp_path / "a")
    )

    assert done.returncode == 2
    assert "no rows" in done.stderr
    assert server.stats()["requests"] == 0


def test_allow_empty_makes_an_empty_input_a_successful_audited_run(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A quiet night: with --allow-empty, a header-only input exits 0 with a whole audit."""
    server = fake_server(users=EXISTING)
    source = tmp_path / "in.csv"
    source.write_text("uid,email\n", encoding="utf-8")
    audit = tmp_path / "a.jsonl"
    args = ["delete", str(source), "--base-url", server.base_url, "--audit", str(audit)]

    refused = run_cli(*args)
    dry = run_cli(*args, "--allow-empty", "--dry-run")
    done = run_cli(*args, "--allow-empty", "--permanent", "--yes")

    assert (refused.returncode, dry.returncode, done.returncode) == (2, 0, 0), done.stderr
    assert "--allow-empty" in refused.stderr
    events = [(r["event"], r.get("status"), r.get("total")) for r in audit_lines(audit)]
    assert events == [("run_started", None, None), ("run_finished", "completed", 0)]
    assert server.stats()["deletes_by_uid"] == {}


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that does not exist: exit 2 and its name in the message."""
    done = run_cli("delete", str(tmp_path / "nope.csv"), "--base-url", "http://127.0.0.1:9/v3")

    assert done.returncode == 2
    assert "nope.csv" in done.stderr


def test_sigterm_stops_gracefully_with_exit_143(fake_server: FakeFactory, tmp_path: Path) -> None:
    """SIGTERM mid-run: in-flight requests finish, the audit is whole, the exit code is 143."""
    server = fake_server("--all-exist", "--latency", "0.05")
    source = _csv(tmp_path / "in.csv", [f"u{n}" for n in range(2000)])
    audit = tmp_path / "a.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", "delete", str(source), "--base-url", server.base_url,
         "--audit", str(audit), "--rate", "200", "--concurrency", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    wait_for_outcomes(audit, 30)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)

    assert process.returncode == 143
    assert "to finish the job, run:" in stdout
    records = audit_lines(audit)
    assert records[-1]["event"] == "run_finished"
    assert records[-1]["status"] == "interrupted"
    sent = server.stats()["deletes_by_uid"]
    audited = {r["uid"] for r in records if "outcome" in r}
    assert set(sent) == audited  # every request that left has its outcome in the audit
    assert len(audited) < 2000


def test_demo_runs_clean(tmp_path: Path) -> None:
    """`bulkdelete demo` deletes the sample users against its in-process fake and exits 0, in
    batches (one intent line per batch of 10), as it says."""
    done = subprocess.run(
        [sys.executable, "-m", "bulkdelete", "demo", "--audit", str(tmp_path / "demo.jsonl")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMETCHAT_")},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert re.search(r"^ +deleted +100$", done.stdout, re.MULTILINE), done.stdout
    outcomes = Counter(r["outcome"] for r in row_records(tmp_path / "demo.jsonl"))
    assert outcomes == {"deleted": 100, "not_found": 20, "duplicate": 1}
    assert "in batches of 10" in done.stdout
    intents = [r for r in audit_lines(tmp_path / "demo.jsonl") if r.get("event") == "batch_sending"]
    assert len(intents) == 12  # 120 distinct UIDs


def _run_on_a_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr, answering its prompt."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *args],
        stdin=terminal, stdout=terminal, stderr=terminal, env=cli_env(), close_fds=True,
    )  # fmt: skip
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 30
    while b"to proceed" not in seen and time.monotonic() < deadline:
        seen += os.read(controller, 4096)
    os.write(controller, answer.encode() + b"\r")
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return process.wait(timeout=30), seen.decode(errors="replace")


@pytest.mark.parametrize(("answer", "code"), [("y", 2), ("5", 1)])  # 1: the invalid row
def test_permanent_run_on_a_terminal_asks_for_the_count(
    fake_server: FakeFactory, tmp_path: Path, answer: str, code: int
) -> None:
    """On a TTY, --permanent shows target, count and permanence; only typing the count proceeds."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:5], extra=["bad/uid,,"])
    args = ["delete", str(source), "--base-url", server.base_url, "--permanent",
            "--audit", str(tmp_path / "a.jsonl")]  # fmt: skip

    returncode, screen = _run_on_a_terminal(args, answer)

    assert "PERMANENTLY delete 5 users" in screen
    assert "column 'uid' (1 of 3); first values 'user-000', 'user-001', 'user-002'" in screen
    assert server.base_url in screen
    assert "cannot be undone" in screen
    assert returncode == code
    expected = dict.fromkeys(EXISTING[:5], 1) if code == 1 else {}
    assert server.stats()["deletes_by_uid"] == expected


def test_max_deletes_refuses_a_bigger_input(fake_server: FakeFactory, tmp_path: Path) -> None:
    """--max-deletes N with more than N valid UIDs: exit 2, nothing sent."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:10], extra=["bad/uid,,", f"{EXISTING[0]},,"])

    over = run_cli("delete", str(source), "--base-url", server.base_url, "--max-deletes", "9")
    assert over.returncode == 2
    assert "10 valid UIDs, more than --max-deletes 9" in over.stderr
    assert server.stats()["requests"] == 0

    audit = tmp_path / "a.jsonl"
    within = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--max-deletes", "10",
        "--audit", str(audit),
    )  # fmt: skip
    assert within.returncode == 1  # the invalid row
    assert len(server.stats()["deletes_by_uid"]) == 10


def test_a_hostile_csv_deletes_exactly_its_valid_users(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """BOM, CRLF, quoted commas, path tricks, controls, formulas, look-alikes, a 1 MB line."""
    valid = ["ok-1", "ok-2", "OK_3"]
    hostile = [
        "../apikeys", "a/b", "%2Fx", "x?y=1", "x#y", '"a,b"', "bell\x07", "=HYPERLINK(1)",
        "+1", "@x", "\u0430lice", "\uff41", "tab\tin", "x" * 101, "",
    ]  # fmt: skip
    body = "\ufeffuid,email\r\n" + "".join(f"{v},e@example.com\r\n" for v in valid + hostile)
    body += "y" * 1_000_000 + ",huge@example.com\r\n" + "ok-4,last@example.com\r\n"
    source = tmp_path / "hostile.csv"
    source.write_text(body, encoding="utf-8", newline="")
    server = fake_server(users=["ok-1", "ok-2", "ok_3", "ok-4"])
    audit = tmp_path / "audit.jsonl"

    done = run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit))

    assert done.returncode == 1  # invalid rows
    assert "Traceback" not in done.stdout + done.stderr
    stats = server.stats()
    assert stats["deletes_by_uid"] == {"ok-1": 1, "ok-2": 1, "ok_3": 1, "ok-4": 1}
    assert stats["unmatched_paths"] == 0
    outcomes = Counter(r["outcome"] for r in row_records(audit))
    assert outcomes == {"deleted": 4, "invalid": len(hostile) + 1}


def test_summary_json_holds_the_summary_facts(fake_server: FakeFactory, tmp_path: Path) -> None:
    """--summary-json writes the run's totals, rates and status for machines."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:6] + MISSING[:2], extra=["bad/one,,"])
    out = tmp_path / "summary.json"

    done = run_cli("delete", "--batch-size", "1", str(source), "--base-url", server.base_url,
                   "--audit", str(tmp_path / "a.jsonl"), "--summary-json", str(out))  # fmt: skip

    assert done.returncode == 1
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["status"] == "completed"
    assert summary["outcomes"] == {"deleted": 6, "not_found": 2, "failed": 0, "invalid": 1,
                                   "duplicate": 0, "already_deactivated": 0}  # fmt: skip
    assert summary["requests"] == 8 + 1  # and the credential check
    assert summary["all_final"] is False
    assert summary["audit"] == str(tmp_path / "a.jsonl")


def test_the_live_app_keeps_its_share_of_the_budget(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """With other clients using 30% of a fixed window, the run yields: none of theirs refused."""
    server = fake_server("--all-exist", "--limit", "300", "--window", "6", "--live-rate", "15")
    source = _csv(tmp_path / "in.csv", [f"busy-{n}" for n in range(240)])

    done = run_cli("delete", str(source), "--base-url", server.base_url,
                   "--audit", str(tmp_path / "a.jsonl"))  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    stats = server.stats()
    assert stats["live_sent"] > 0
    assert stats["live_refused"] == 0
    assert len(stats["applied"]) == 240


@pytest.mark.parametrize("flag", ["--summary-json", "--ca-bundle"])
def test_an_unusable_output_or_ca_file_exits_2_before_any_request(
    fake_server: FakeFactory, tmp_path: Path, flag: str
) -> None:
    """--summary-json in a missing directory, a --ca-bundle with no PEM in it: exit 2, one line."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:3])
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n", encoding="utf-8")
    value = {"--summary-json": tmp_path / "no-such-dir" / "s.json", "--ca-bundle": not_pem}[flag]

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(tmp_path / "a.jsonl"),
        flag, str(value),
    )  # fmt: skip

    assert done.returncode == 2
    assert f"{flag} {value}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert server.stats()["requests"] == 0


@pytest.mark.parametrize(
    "mistake", ["audit-is-the-input", "audit-is-a-csv", "audit-is-binary", "summary-is-the-audit",
                "input-is-a-fifo"],
)  # fmt: skip
def test_files_that_would_be_overwritten_or_hang_exit_2_and_stay_intact(
    fake_server: FakeFactory, tmp_path: Path, mistake: str
) -> None:
    """An audit or summary over an input or a non-audit file, a FIFO input: exit 2, no change."""
    server = fake_server(users=EXISTING)
    source = _csv(tmp_path / "in.csv", EXISTING[:3])
    audit, other = tmp_path / "a.jsonl", tmp_path / "precious.csv"
    other.write_bytes(b"uid,email\nkeep-1,a@b\nkeep-2,c@d")  # no newline at the end
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(bytes(range(256)).replace(b"\n", b""))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert run_cli("delete", str(source), "--base-url", server.base_url,
                   "--audit", str(audit)).returncode == 0  # fmt: skip
    args, message = {
        "audit-is-the-input": ([str(source), "--audit", str(source)], "would overwrite"),
        "audit-is-a-csv": ([str(source), "--audit", str(other)], "is not a bulkdelete audit"),
        "audit-is-binary": ([str(source), "--audit", str(binary)], "is not a bulkdelete audit"),
        "summary-is-the-audit": (
            [str(source), "--audit", str(audit), "--summary-json", str(audit)],
            "would overwrite",
        ),
        "input-is-a-fifo": ([str(fifo), "--audit", str(tmp_path / "b.jsonl")], "is a pipe"),
    }[mistake]
    before = {p: p.read_bytes() for p in (source, audit, other, binary)}
    sent = server.stats()["requests"]

    done = run_cli("delete", *args, "--base-url", server.base_url, timeout=30)

    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert server.stats()["requests"] == sent


def _run_with_umask_022(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI under the common umask 022, so a file it creates plainly would be 0644."""
    return subprocess.run(
        [sys.executable, "-m", "bulkdelete", *args],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_every_file_holding_uids_is_private(fake_server: FakeFactory, tmp_path: Path) -> None:
    """Audit, summary, HTML report and CSV exports end 0600, also where they existed as 0644."""
    server = fake_server(users=EXISTING[:3])
    source = _csv(tmp_path / "in.csv", EXISTING[:3] + MISSING[:2])
    audit, summary = tmp_path / "a.jsonl", tmp_path / "summary.json"
    html, failed, not_found = tmp_path / "r.html", tmp_path / "failed.csv", tmp_path / "nf.csv"
    for existing in (summary, failed):
        existing.write_text("older contents\n", encoding="utf-8")
        existing.chmod(0o644)
    erase = _run_with_umask_022(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--permanent", "--yes", "--summary-json", str(summary),
    )  # fmt: skip
    assert erase.returncode == 0, erase.stderr
    audit.chmod(0o644)  # as an older version or a copy left it: the next writer narrows it

    check = _run_with_umask_022("check", str(audit), "--base-url", server.base_url)
    report = _run_with_umask_022(
        "report", str(audit), "--html", str(html), "--failed-out", str(failed),
        "--not-found-out", str(not_found),
    )  # fmt: skip

    assert (check.returncode, report.returncode) == (0, 0), check.stderr + report.stderr
    modes = {p.name: _mode(p) for p in (audit, summary, html, failed, not_found)}
    assert modes == dict.fromkeys(modes, 0o600)
    # The bulk probe confirmed the two not-found UIDs absent: nothing unproven to export.
    assert not_found.read_text(encoding="utf-8").count("gone-") == 0


def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path) -> None:
    """--api-key-file readable by group or others: one warning line on stderr; 0600: none."""
    source = _csv(tmp_path / "in.csv", EXISTING[:2])
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n", encoding="utf-8")
    warnings: dict[int, list[str]] = {}

    for mode in (0o644, 0o640, 0o600):
        key_file.chmod(mode)
        done = run_cli(
            "delete", str(source), "--base-url", "http://127.0.0.1:9/v3", "--dry-run",
            "--api-key-file", str(key_file), env=cli_env(COMETCHAT_API_KEY=""),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert API_KEY not in done.stdout + done.stderr
        warnings[mode] = [line for line in done.stderr.splitlines() if "warning" in line]

    assert [len(lines) for lines in warnings.values()] == [1, 1, 0]
    assert f"(mode 0640); make it private with: chmod 600 {key_file}" in warnings[0o640][0]


def test_an_interrupted_summary_accounts_for_every_input_row(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """SIGINT over 3,000 rows: text, run_finished and JSON each add up to the 3,000 rows."""
    server = fake_server("--all-exist", "--latency", "0.05")
    source = _csv(tmp_path / "in.csv", [f"u{n}" for n in range(2990)], extra=["bad/x,,"] * 10)
    audit, out = tmp_path / "a.jsonl", tmp_path / "summary.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", "delete", "--batch-size", "1",
                                             str(source), "--base-url", server.base_url,
         "--audit", str(audit), "--rate", "200", "--summary-json", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    wait_for_outcomes(audit, 40)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    headline = re.search(r"bulkdelete interrupted: (\d+) rows", stdout)
    assert headline is not None, stdout
    labels = [o.value for o in Outcome] + ["skipped", "unsent", "no answer", "unread"]
    counted = {
        m["label"]: int(m["n"])
        for m in re.finditer(rf"^  (?P<label>{'|'.join(labels)})\s+(?P<n>\d+)", stdout, re.M)
    }
    assert (int(headline[1]), sum(counted.values())) == (3000, 3000), stdout
    assert counted["unread"] > 0  # the run stopped long before the producer read everything
    finished = audit_lines(audit)[-1]
    parts = ("rows", "skipped", "unsent", "unanswered", "unread")
    assert (finished["total"], sum(finished[p] for p in parts)) == (3000, 3000)
    document = json.loads(out.read_text(encoding="utf-8"))
    assert (document["total"], sum(document[p] for p in parts)) == (3000, 3000)
    assert document["unread"] == counted["unread"] == finished["unread"]


def _run_with_file_size_limit(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI unable to write past ``limit`` bytes into any file: a disk that fills up.

    Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as one to a full disk
    fails with ENOSPC: the real CLI meets a real write error mid-run.
    """
    return subprocess.run(
        [sys.executable, "-m", "bulkdelete", *args],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )  # fmt: skip


def test_an_audit_that_fills_up_mid_run_exits_4_with_a_summary_on_stderr(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """The audit stops taking lines after some deletions: exit 4 (never 2), a summary on stderr,
    and the audit stays good to --resume."""
    uids = [f"member-{n:04d}" for n in range(400)]
    server = fake_server(users=uids)
    audit = tmp_path / "a.jsonl"
    # An earlier run of huge invalid rows brings the audit to about 2 MB, so that the limit sits
    # well above what the process writes to any other file (its coverage data, say).
    padding = tmp_path / "padding.txt"
    padding.write_text(("x" * 50_000 + "\n") * 40, encoding="utf-8")
    assert run_cli("delete", str(padding), "--base-url", server.base_url,
                   "--audit", str(audit)).returncode == 1  # fmt: skip
    source = tmp_path / "in.txt"
    source.write_text("\n".join(uids) + "\n", encoding="utf-8")
    args = ["delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
            "--rate", "1000", "--concurrency", "8"]  # fmt: skip

    full = _run_with_file_size_limit(audit.stat().st_size + 30_000, *args)

    assert full.returncode == 4, full.stdout + full.stderr
    deleted = len(server.stats()["applied"])
    assert 0 < deleted < len(uids)
    assert "bulkdelete STOPPED: the audit could not be written" in full.stderr
    assert "File too large" in full.stderr
    assert re.search(r"^  deleted\s+\d+$", full.stderr, flags=re.MULTILINE), full.stderr
    assert "to finish the job, run:" in full.stderr
    done = run_cli(*args, "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    finals = Counter(
        r["normalised_uid"]
        for r in audit_lines(audit)
        if r.get("outcome") in {"deleted", "not_found", "already_deactivated"}
        and r["normalised_uid"] in uids
    )
    assert finals == Counter(uids)  # every UID once: none lost, none settled twice
    assert set(server.stats()["applied"]) == set(uids)


def test_a_dry_run_lists_invalid_rows_by_line_and_writes_its_summary_json(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--invalid-out names each invalid row's file, line, value and reason (0600, formulas
    defused); --summary-json says what a real run would do. Nothing is sent."""
    server = fake_server(users=EXISTING)
    source = _csv(
        tmp_path / "in.csv", EXISTING[:3], extra=["a/b,,", "=HYPERLINK(1),,", "user-001,,"]
    )
    invalid, out = tmp_path / "invalid.csv", tmp_path / "dry.summary.json"
    args = ["delete", str(source), "--base-url", server.base_url, "--audit", str(tmp_path / "a"),
            "--permanent", "--invalid-out", str(invalid), "--summary-json", str(out)]  # fmt: skip

    done = _run_with_umask_022(*args, "--dry-run")
    real = run_cli(*args, "--yes")

    assert done.returncode == 0, done.stderr
    assert f"invalid rows by line (file, line, value, reason): {invalid}" in done.stdout
    with invalid.open(encoding="utf-8", newline="") as handle:
        listed = list(csv.reader(handle))
    assert listed == [
        ["file", "line", "value", "reason"],
        [str(source), "5", "a/b", "path separator or traversal"],
        [str(source), "6", "'=HYPERLINK(1)", "looks like a spreadsheet formula"],
    ]
    assert (_mode(invalid), _mode(out)) == (0o600, 0o600)
    document = json.loads(out.read_text(encoding="utf-8"))
    assert {k: document[k] for k in ("status", "permanent", "total", "valid", "invalid",
                                     "duplicate")} == {
        "status": "dry_run", "permanent": True, "total": 6, "valid": 3, "invalid": 2,
        "duplicate": 1,
    }  # fmt: skip
    assert document["inputs"][0]["rows"] == 6
    assert real.returncode == 2  # --invalid-out belongs to a dry run: refused, nothing sent
    assert "--invalid-out" in real.stderr
    assert server.stats()["requests"] == 0
    assert not (tmp_path / "a").exists()


# --- the column of UIDs: never guessed ------------------------------------------------------

TICKETS = "ticket_id,user_id,requested_at\n1001,alice,2026-11-01\n1002,bob,2026-11-02\n"
IDS = "id,user_id,email\n1001,alice,a@example.com\n1002,bob,b@example.com\n1003,carol,c@x\n"
NUMBERS_AND_NAMES = ["1001", "1002", "1003", "alice", "bob", "carol", "user_id"]


@pytest.mark.parametrize(
    ("content", "flags"), [(TICKETS, []), (IDS, ["--permanent", "--yes"])], ids=["tickets", "ids"]
)
def test_a_header_that_names_no_uid_column_exits_2_and_sends_nothing(
    fake_server: FakeFactory, tmp_path: Path, content: str, flags: list[str]
) -> None:
    """No column named uid and no --column: one line naming the columns and --column, exit 2."""
    server = fake_server(users=NUMBERS_AND_NAMES)
    source, audit = tmp_path / "in.csv", tmp_path / "a.jsonl"
    source.write_text(content, encoding="utf-8")

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit), *flags
    )

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    header = content.split("\n", 1)[0].split(",")
    assert all(repr(name) in done.stderr for name in header)
    assert "--column" in done.stderr
    assert (server.stats()["requests"], audit.exists()) == (0, False)


def test_column_erases_the_users_of_the_named_column(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """id,user_id,email with --column user_id: alice, bob and carol are erased, no id is sent."""
    server = fake_server(users=NUMBERS_AND_NAMES)
    source, audit = tmp_path / "in.csv", tmp_path / "a.jsonl"
    source.write_text(IDS, encoding="utf-8")

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--permanent", "--yes", "--column", "user_id",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert server.stats()["permanent_flags"] == {uid: [True] for uid in ["alice", "bob", "carol"]}
    started = next(r for r in audit_lines(audit) if r.get("event") == "run_started")
    assert [(i["name"], i["column"]) for i in started["inputs"]] == [(str(source), "user_id")]


def test_a_one_column_file_headed_user_id_never_sends_its_header(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Refused (exit 2, nothing sent) until --column says it is the header; then never sent."""
    server = fake_server(users=NUMBERS_AND_NAMES)
    source, audit = tmp_path / "in.csv", tmp_path / "a.jsonl"
    source.write_text("user_id\nalice\nbob\n", encoding="utf-8")
    args = ["delete", str(source), "--base-url", server.base_url, "--audit", str(audit)]

    refused = run_cli(*args)
    assert refused.returncode == 2
    assert "reads like a column name" in refused.stderr
    assert ("--column user_id" in refused.stderr, "--no-header" in refused.stderr) == (True, True)
    assert server.stats()["requests"] == 0

    done = run_cli(*args, "--column", "user_id")
    assert done.returncode == 0, done.stdout + done.stderr
    assert server.stats()["deletes_by_uid"] == {"alice": 1, "bob": 1}


def test_the_dry_run_names_each_column_and_its_first_values(tmp_path: Path) -> None:
    """The dry run says which column it read, or that there is no header, and the first values."""
    ids, plain = tmp_path / "ids.csv", tmp_path / "plain.txt"
    ids.write_text(IDS, encoding="utf-8")
    plain.write_text("dave\nerin\n", encoding="utf-8")
    args = ["--base-url", "http://127.0.0.1:9/v3", "--dry-run"]

    named = run_cli("delete", str(ids), *args, "--column", "user_id")
    headerless = run_cli("delete", str(plain), *args)

    assert (named.returncode, headerless.returncode) == (0, 0), named.stderr + headerless.stderr
    expected = f"  {ids}: column 'user_id' (2 of 3); first values 'alice', 'bob', 'carol'"
    assert expected in named.stdout
    expected = f"  {plain}: no header row, one UID per line; first values 'dave', 'erin'"
    assert expected in headerless.stdout
