"""--audit-uid-hash: an audit that proves what happened to each user without naming them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import FakeFactory, cli_env, row_records, run_cli, wait_for_outcomes

AUDIT_KEY = "auditor-key-0b1f"
UIDS = [f"person-{n:03d}" for n in range(300)]


def _env(**extra: str) -> dict[str, str]:
    return cli_env(BULKDELETE_AUDIT_KEY=AUDIT_KEY, **extra)


def _input(tmp_path: Path) -> Path:
    source = tmp_path / "erase.csv"
    lines = ["uid,email", *(f"{u.upper()},{u}@example.com" for u in UIDS), "jane.doe@example.com,"]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


def test_the_audit_names_no_user_in_clear(fake_server: FakeFactory, tmp_path: Path) -> None:
    """Neither the UIDs as given, nor lowercased, nor an invalid row's value appear in the audit."""
    server = fake_server(users=UIDS[:250])
    source, audit = _input(tmp_path), tmp_path / "audit.jsonl"

    done = run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
                   "--audit-uid-hash", env=_env())  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr  # the invalid e-mail row
    text = audit.read_text(encoding="utf-8")
    assert not [u for u in UIDS if u in text or u.upper() in text]
    assert "jane.doe" not in text
    outcomes = Counter(r["outcome"] for r in row_records(audit))
    assert outcomes == {"deleted": 250, "not_found": 50, "invalid": 1}
    assert all(r["uid"].startswith("hmac:") for r in row_records(audit))


def test_resume_and_verify_work_with_the_key(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A SIGTERM'd pseudonymous run resumes without resending, and verify --input passes."""
    server = fake_server("--latency", "0.02", users=UIDS)
    source, audit = _input(tmp_path), tmp_path / "audit.jsonl"
    args = ["delete", "--batch-size", "1",
            str(source), "--base-url", server.base_url, "--audit", str(audit),
            "--audit-uid-hash", "--concurrency", "8", "--rate", "300"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "bulkdelete", *args], env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_outcomes(audit, 100)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 143

    resumed = run_cli(*args, "--resume", env=_env())
    verified = run_cli("verify", str(audit), "--input", str(source), env=_env())
    unkeyed = run_cli("verify", str(audit), "--input", str(source))

    assert resumed.returncode == 1, resumed.stdout  # the invalid row, audited once
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(UIDS, 1)
    assert verified.returncode == 0, verified.stdout
    assert "301 input rows" in verified.stdout
    assert unkeyed.returncode == 1  # the chain is keyed too: nothing is taken on trust


def test_guards(fake_server: FakeFactory, tmp_path: Path) -> None:
    """No key: exit 2. A pseudonymous audit cannot feed check or report --failed-out."""
    server = fake_server(users=UIDS)
    source, audit = _input(tmp_path), tmp_path / "audit.jsonl"

    no_key = run_cli("delete", str(source), "--base-url", server.base_url, "--audit-uid-hash")
    run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
            "--audit-uid-hash", env=_env())  # fmt: skip
    check = run_cli("check", str(audit), env=_env())
    failed_out = run_cli("report", str(audit), "--failed-out", str(tmp_path / "f.csv"), env=_env())
    report = run_cli("report", str(audit), env=_env())

    assert no_key.returncode == 2
    assert "BULKDELETE_AUDIT_KEY" in no_key.stderr
    assert check.returncode == 2
    assert "pseudonyms" in check.stderr
    assert failed_out.returncode == 2
    assert report.returncode == 0
    assert re.search(r"^ +deleted +300$", report.stdout, re.MULTILINE), report.stdout
