"""Batched soft runs end to end: the real CLI against the fake server over loopback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from helpers import (
    API_KEY,
    FakeFactory,
    FakeProcess,
    audit_lines,
    cli_env,
    row_records,
    run_cli,
    wait_for_outcomes,
)

USERS = [f"member-{n:04d}" for n in range(250)]
FINAL = {"deleted", "not_found", "already_deactivated"}


def _input(tmp_path: Path, rows: list[str], name: str = "in.txt") -> Path:
    source = tmp_path / name
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return source


def _delete(server: FakeProcess, source: Path, audit: Path, *extra: str) -> Any:
    return run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--no-progress", "--rate", "1000", *extra,
    )  # fmt: skip


def _outcomes(audit: Path) -> dict[str, str]:
    return {r["uid"]: r["outcome"] for r in row_records(audit)}


def _intents(audit: Path) -> list[dict[str, Any]]:
    return [r for r in audit_lines(audit) if r.get("event") == "batch_sending"]


def test_a_soft_run_is_batched_and_each_row_has_its_outcome(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """250 rows go out in 3 bulk calls; deactivated now, before, and absent users each get
    their own outcome on their own line; verify --input and check pass on the audit."""
    before = tmp_path / "deactivated.txt"
    before.write_text("\n".join(USERS[200:230]) + "\n", encoding="utf-8")
    server = fake_server("--deactivated-file", str(before), users=USERS[:200])
    source = _input(tmp_path, [*USERS, "bad/uid", USERS[0].upper()])
    audit = tmp_path / "a.jsonl"

    done = _delete(server, source, audit)

    assert done.returncode == 1, done.stderr  # the invalid row makes the run incomplete
    outcomes = Counter(_outcomes(audit).values())
    expected = {"deleted": 200, "already_deactivated": 30, "not_found": 20}
    assert outcomes == {**expected, "invalid": 1, "duplicate": 1}
    stats = server.stats()
    assert (stats["bulk_calls"], stats["bulk_refused"]) == (3, 0)
    assert [len(i["normalised_uids"]) for i in _intents(audit)] == [100, 100, 50]
    assert "4 requests" in done.stdout  # the credential check and 3 calls
    verified = run_cli("verify", str(audit), "--input", str(source))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    checked = run_cli("check", str(audit), "--base-url", server.base_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Deactivated now or before: the API no longer returns any of the 230.
    read_back = [r for r in audit_lines(audit) if r.get("event") == "read_back"]
    assert Counter(r["result"] for r in read_back) == {"gone": 230}


def test_a_server_that_takes_25_a_call_gets_25_after_two_refusals(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--max-batch 25: the first batch is refused twice (100, then 50), the run learns 25 and
    every other call is accepted; every UID ends deleted, once."""
    server = fake_server("--max-batch", "25", users=USERS)
    audit = tmp_path / "a.jsonl"

    done = _delete(server, _input(tmp_path, USERS), audit)

    assert done.returncode == 0, done.stderr
    stats = server.stats()
    assert (stats["bulk_refused"], stats["bulk_calls"]) == (2, 2 + 10)
    assert Counter(_outcomes(audit).values()) == {"deleted": 250}
    assert set(stats["deletes_by_uid"].values()) == {1}  # refused calls apply to no one
    assert set(stats["applied"]) == set(USERS)


def test_uids_a_200_never_lists_are_failed_never_deleted(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A server whose 200s name no UID in any list: each UID is sent again up to
    --max-attempts, then failed as unconfirmed; exit 1, nothing counted deleted."""
    server = fake_server("--bulk-unlisted-rate", "1", users=USERS[:10])
    audit = tmp_path / "a.jsonl"

    done = _delete(server, _input(tmp_path, USERS[:10]), audit, "--max-attempts", "3")

    assert done.returncode == 1, done.stderr
    rows = row_records(audit)
    assert {(r["outcome"], r["error_code"], r["attempts"]) for r in rows} == {
        ("failed", "UNCONFIRMED_2XX", 3)
    }
    assert server.stats()["bulk_calls"] == 3


def test_uids_a_200_leaves_out_are_resent_and_settled(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A third of the UIDs missing from each 200: they are sent again; the call had applied,
    so they end already deactivated, with a note that this run most likely did it."""
    server = fake_server("--bulk-unlisted-rate", "0.3", "--seed", "5", users=USERS)
    audit = tmp_path / "a.jsonl"

    done = _delete(server, _input(tmp_path, USERS), audit, "--max-attempts", "8")

    assert done.returncode == 0, done.stderr
    rows = row_records(audit)
    assert {r["outcome"] for r in rows} == {"deleted", "already_deactivated"}
    again = [r for r in rows if r["outcome"] == "already_deactivated"]
    assert again
    assert {r["note"] for r in again} == {"an earlier request of this run probably deactivated it"}
    assert set(server.stats()["applied"]) == set(USERS)


def test_faults_on_bulk_calls_lose_nothing_and_leak_no_key(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """5xx, 429s, dropped answers and reset connections on the bulk calls: every UID ends
    with a final outcome, verify passes, and the key is in no output, log or audit."""
    server = fake_server(
        "--seed", "7", "--fail-rate", "0.1", "--throttle-rate", "0.1", "--drop-rate", "0.1",
        "--reset-rate", "0.1", "--fault-retry-after", "0.05", users=USERS,
    )  # fmt: skip
    source, audit = _input(tmp_path, USERS), tmp_path / "a.jsonl"

    done = _delete(server, source, audit, "--batch-size", "20", "--max-attempts", "12",
                   "--log-level", "debug")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "batch_retry_scheduled" in done.stderr  # the faults were met, and logged
    assert {r["outcome"] for r in row_records(audit)} <= FINAL
    assert len(row_records(audit)) == len(USERS)
    for text in (done.stdout, done.stderr, audit.read_text(encoding="utf-8")):
        assert API_KEY not in text
    verified = run_cli("verify", str(audit), "--input", str(source))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_batch_size_1_and_batches_give_every_row_the_same_outcome(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """The same users, one DELETE each or in batches: the same outcome per row, 1 call vs 250."""
    results = {}
    for size in ("1", "100"):
        server = fake_server(users=USERS[:200])
        audit = tmp_path / f"a-{size}.jsonl"
        done = _delete(server, _input(tmp_path, USERS), audit, "--batch-size", size)
        assert done.returncode == 0, done.stderr
        results[size] = (_outcomes(audit), server.stats()["requests"])
    assert results["1"][0] == results["100"][0]
    assert (results["1"][1], results["100"][1]) == (1 + 250, 1 + 3)


def test_a_kill_mid_batch_then_resume_resends_at_most_the_batches_in_flight(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """kill -9 while batches wait for slow answers: --resume sends again only UIDs that an
    intent names without an outcome; every UID ends final once; verify passes."""
    uids = [f"member-{n:04d}" for n in range(2000)]
    server = fake_server("--latency", "0.3", users=uids)
    source, audit = _input(tmp_path, uids), tmp_path / "a.jsonl"
    args = ["delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
            "--no-progress", "--rate", "20", "--batch-size", "50",
            "--concurrency", "4"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(),
    )  # fmt: skip
    try:
        wait_for_outcomes(audit, 200)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    lines = audit_lines(audit)
    answered = {r["normalised_uid"] for r in lines if "outcome" in r}
    announced = {
        u for r in lines if r.get("event") == "batch_sending" for u in r["normalised_uids"]
    }
    in_flight = announced - answered
    sent_before = dict(server.stats()["deletes_by_uid"])

    done = run_cli(*args, "--resume")

    assert done.returncode == 0, done.stdout + done.stderr
    sent_again = {
        uid for uid, n in server.stats()["deletes_by_uid"].items() if n > 1 and uid in sent_before
    }
    assert sent_again <= in_flight
    finals = Counter(r["normalised_uid"] for r in row_records(audit) if r["outcome"] in FINAL)
    assert finals == Counter(uids)
    verified = run_cli("verify", str(audit), "--input", str(source))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_pseudonyms_and_references_in_a_batched_audit(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--audit-uid-hash and --ref-column: the intent lines name pseudonyms, never a UID, and
    each row line carries its own reference."""
    server = fake_server(users=USERS[:20])
    rows = ["uid,ticket"] + [f"{uid},T-{n}" for n, uid in enumerate(USERS[:20])]
    source, audit = _input(tmp_path, rows, "in.csv"), tmp_path / "a.jsonl"
    env = cli_env(BULKDELETE_AUDIT_KEY="k" * 32)

    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--no-progress", "--audit-uid-hash", "--ref-column", "ticket", env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    text = audit.read_text(encoding="utf-8")
    assert not any(uid in text for uid in USERS[:20])
    [intent] = _intents(audit)
    assert intent["refs"] == [f"T-{n}" for n in range(20)]
    assert sorted(r["ref"] for r in row_records(audit)) == sorted(f"T-{n}" for n in range(20))
    verified = run_cli("verify", str(audit), "--input", str(source), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_batch_size_with_permanent_is_refused_before_anything_is_sent(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--permanent --batch-size 10: one line, exit 2, no request, no audit."""
    server = fake_server(users=USERS[:5])
    audit = tmp_path / "a.jsonl"

    done = _delete(server, _input(tmp_path, USERS[:5]), audit, "--permanent", "--yes",
                   "--batch-size", "10")  # fmt: skip

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bulkdelete: error: --batch-size 10 with --permanent: CometChat erases one user per call "
        "(it has no bulk erasure), so a permanent run cannot batch; drop --batch-size"
    ]
    assert (server.stats()["requests"], audit.exists()) == (0, False)


def test_metrics_count_calls_and_users(fake_server: FakeFactory, tmp_path: Path) -> None:
    """The summary JSON and the metrics file of a batched run: 250 users, 4 requests."""
    server = fake_server(users=USERS)
    summary, metrics = tmp_path / "s.json", tmp_path / "m.prom"

    done = _delete(server, _input(tmp_path, USERS), tmp_path / "a.jsonl",
                   "--summary-json", str(summary), "--metrics-file", str(metrics))  # fmt: skip

    assert done.returncode == 0, done.stderr
    facts = json.loads(summary.read_text(encoding="utf-8"))
    assert (facts["requests"], facts["outcomes"]["deleted"]) == (4, 250)
    assert re.search(r"^bulkdelete_requests 4(\.0)?$", metrics.read_text(), re.MULTILINE)


def test_a_slow_stream_is_sent_as_it_comes(fake_server: FakeFactory, tmp_path: Path) -> None:
    """stdin rows that trickle in are sent without waiting for a full batch."""
    server = fake_server(users=USERS[:3])
    audit = tmp_path / "a.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", "delete", "-", "--base-url", server.base_url,
         "--audit", str(audit), "--no-progress"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        env=cli_env(),
    )  # fmt: skip
    assert process.stdin is not None
    try:
        process.stdin.write(USERS[0] + "\n")
        process.stdin.flush()
        wait_for_outcomes(audit, 1)
        process.stdin.write("\n".join(USERS[1:3]) + "\n")
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert Counter(_outcomes(audit).values()) == {"deleted": 3}
