"""stdin is read as it comes: a real producer process piped into the real CLI, a real fake server.

The producer writes some UIDs, waits until the fake server has deleted them, then writes more
(or never ends): a run that waited for the end of its input would leave it waiting.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import (
    FakeFactory,
    audit_lines,
    cli_env,
    pipe_into_cli,
    row_records,
    run_cli,
    wait_until_applied,
)

FIRST = [f"early-{n}" for n in range(5)]
LATER = [f"late-{n}" for n in range(5)]


def _args(base_url: str, audit: Path, *extra: str) -> list[str]:
    # One DELETE per user: these tests count the requests each streamed row makes.
    return ["delete", "-", "--base-url", base_url, "--audit", str(audit), "--no-progress",
            "--batch-size", "1", *extra]  # fmt: skip


def _events(audit: Path, event: str) -> list[dict[str, object]]:
    return [r for r in audit_lines(audit) if r.get("event") == event]


def test_a_run_sends_before_its_producer_ends(fake_server: FakeFactory, tmp_path: Path) -> None:
    """The first UIDs are deleted while the producer still waits to write the rest."""
    server = fake_server(users=FIRST + LATER)
    audit = tmp_path / "audit.jsonl"
    piped = pipe_into_cli(
        server.base_url, [*FIRST, "<wait>", *LATER], *_args(server.base_url, audit)
    )
    try:
        produced, code, stdout, stderr = piped.finish()
    finally:
        piped.stop()

    assert (produced, code) == (0, 0), stdout + stderr  # the producer saw deletions before it ended
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(FIRST + LATER, 1)
    assert Counter(r["outcome"] for r in row_records(audit)) == {"deleted": 10}
    data = "".join(f"{uid}\n" for uid in FIRST + LATER).encode()
    started, read = _events(audit, "run_started")[0], _events(audit, "input_read")[0]
    assert started["inputs"] == [{"name": "-", "streamed": True, "column": None}]
    expected = {"name": "-", "rows": 10, "bytes": len(data), "complete": True}
    assert expected == {k: read[k] for k in expected}
    assert read["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_producer_that_never_ends_is_processed_and_kill_9_leaves_no_uid_file(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """UIDs are deleted as they come; after kill -9 the temp directory holds nothing."""
    server = fake_server(users=FIRST)
    audit, temp = tmp_path / "audit.jsonl", tmp_path / "tmp"
    temp.mkdir()
    env = cli_env(TMPDIR=str(temp))
    piped = pipe_into_cli(
        server.base_url, [*FIRST, "<hang>"], *_args(server.base_url, audit), env=env
    )
    try:
        wait_until_applied(server, FIRST)
        piped.bulkdelete.send_signal(signal.SIGKILL)
        assert piped.bulkdelete.wait(timeout=10) == -signal.SIGKILL
    finally:
        piped.stop()

    assert list(temp.iterdir()) == []
    assert {r["uid"] for r in row_records(audit)} <= set(FIRST)


def test_a_nul_byte_mid_stream_stops_the_run_and_sends_nothing_more(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Rows before it are deleted; the run stops there, audits why and exits 3."""
    server = fake_server(users=FIRST + LATER)
    audit = tmp_path / "audit.jsonl"
    plan = [*FIRST, "<wait>", "bro\x00ken", *LATER]
    piped = pipe_into_cli(server.base_url, plan, *_args(server.base_url, audit))
    try:
        produced, code, stdout, stderr = piped.finish()
    finally:
        piped.stop()

    assert (produced, code) == (0, 3), stdout + stderr
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(FIRST, 1)
    assert "stopped because: INPUT_ERROR: -:6: contains a NUL byte" in stdout
    assert "nothing more was sent" in stdout
    stopped = _events(audit, "input_stopped")
    assert [(s["code"], s["source"]) for s in stopped] == [("INPUT_ERROR", "-:6")]
    assert _events(audit, "run_finished")[0]["fatal_code"] == "INPUT_ERROR"
    assert _events(audit, "input_read")[0]["complete"] is False


def test_max_deletes_caps_a_stream_and_sends_nothing_beyond(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Three UIDs allowed, however fast they come: exactly those are sent, then the run stops."""
    server = fake_server(users=FIRST + LATER)
    audit = tmp_path / "audit.jsonl"
    plan = [*FIRST[:3], "bad/one", FIRST[0], *LATER]
    args = _args(server.base_url, audit, "--max-deletes", "3")
    piped = pipe_into_cli(server.base_url, plan, *args)
    try:
        produced, code, stdout, stderr = piped.finish()
    finally:
        piped.stop()

    assert (produced, code) == (0, 3), stdout + stderr
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(FIRST[:3], 1)
    assert "stopped because: MAX_DELETES: the input holds more than --max-deletes 3" in stdout
    assert "the first 3 were sent, -:6 and the rest of the input were not" in stdout
    stopped = _events(audit, "input_stopped")
    assert [(s["code"], s["source"]) for s in stopped] == [("MAX_DELETES", "-:6")]
    outcomes = Counter(r["outcome"] for r in row_records(audit))
    assert outcomes == {"deleted": 3, "invalid": 1, "duplicate": 1}


def test_permanent_from_stdin_without_yes_does_not_wait_for_stdin(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Refused at once with exit 2, even while the producer has not written anything."""
    server = fake_server(users=FIRST)
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *_args(server.base_url, tmp_path / "a.jsonl"),
         "--permanent"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(),
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stderr is not None
    try:
        code = process.wait(timeout=20)  # stdin stays open and empty all along
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.communicate()

    assert code == 2
    assert "--yes" in stderr
    assert server.stats()["requests"] == 0


def test_an_ambiguous_first_line_on_stdin_is_refused_before_anything_is_sent(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A stream headed user_id: exit 2 naming --column and --no-header, no audit, no request."""
    server = fake_server(users=FIRST)
    audit = tmp_path / "audit.jsonl"
    piped = pipe_into_cli(server.base_url, ["user_id", *FIRST], *_args(server.base_url, audit))
    try:
        _, code, _, stderr = piped.finish()
    finally:
        piped.stop()

    assert code == 2
    assert "-:1: the first value 'user_id' reads like a column name" in stderr
    assert ("--column user_id" in stderr, "--no-header" in stderr) == (True, True)
    assert len(stderr.strip().splitlines()) == 1
    assert (server.stats()["requests"], audit.exists()) == (0, False)


def test_a_dry_run_reads_stdin_to_its_end_and_names_its_column() -> None:
    """Counts, the header, the first values, and --max-deletes over the whole stream."""
    lines = "uid\nalice\nbob\nbad/one\nALICE\ncarol\n"
    args = ["delete", "-", "--base-url", "http://127.0.0.1:9/v3", "--dry-run"]

    done = run_cli(*args, stdin=lines)
    over = run_cli(*args, "--max-deletes", "2", stdin=lines)

    assert done.returncode == 0, done.stderr
    assert "rows 5 in 1 file(s): valid 3, invalid 1, duplicate 1" in done.stdout
    assert "  -: header 'uid' on line 1, one column; first values 'alice', 'bob', 'bad/one'" in (
        done.stdout
    )
    assert over.returncode == 2
    assert "3 valid UIDs, more than --max-deletes 2" in over.stderr


def test_a_fatal_answer_ends_the_run_while_its_producer_is_silent(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """The key is revoked mid-run: exit 3 at once, without waiting for a line that never comes."""
    server = fake_server("--all-exist", "--revoke-key-after", "3")
    audit = tmp_path / "audit.jsonl"
    piped = pipe_into_cli(server.base_url, [*FIRST, "<hang>"], *_args(server.base_url, audit))
    try:
        code = piped.bulkdelete.wait(timeout=20)
        producing = piped.producer.poll() is None
    finally:
        piped.stop()

    assert (code, producing) == (3, True)
    assert _events(audit, "run_finished")[0]["status"] == "aborted"
    assert _events(audit, "input_read")[0]["complete"] is False
