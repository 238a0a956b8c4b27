"""What the server says is checked, never trusted: the real CLI against a fake that misleads it.

Answers that prove nothing (a 2xx without CometChat's confirmation), a key quoted back in an
error message, a base URL that is not the API, and an answer too large to read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import API_KEY, FakeFactory, audit_lines, cli_env, row_records, run_cli

USERS = ["ann", "bob", "cat"]

# Each kind of 2xx that proves nothing, and words its audited reason must hold.
UNPROVEN = {
    "html": "HTTP 200 with a body that is not JSON",
    "empty": "HTTP 200 with an empty body",
    "success-false": 'HTTP 200 with "success": false',
    "invalid-json": "HTTP 200 with a body that is not JSON",
    "error-200": "HTTP 200 with error ERR_UID_NOT_FOUND",
}


def _input(tmp_path: Path, uids: list[str]) -> Path:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(uids) + "\n", encoding="utf-8")
    return source


def _delete(
    base_url: str, source: Path, audit: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "delete", str(source), "--base-url", base_url, "--audit", str(audit), "--no-progress",
        "--batch-size", "1", *extra,  # the answers under test are a single DELETE's
    )  # fmt: skip


@pytest.mark.parametrize("kind", UNPROVEN.keys())
def test_a_2xx_that_proves_nothing_is_failed_with_its_reason(
    fake_server: FakeFactory, tmp_path: Path, kind: str
) -> None:
    """HTML, an empty body, success false, invalid JSON or a 200 error: failed, never deleted."""
    server = fake_server("--success-body", kind, users=USERS)
    audit = tmp_path / "audit.jsonl"

    done = _delete(server.base_url, _input(tmp_path, USERS), audit, "--max-attempts", "1")

    records = row_records(audit)
    assert done.returncode == 1, done.stdout + done.stderr
    assert [(r["outcome"], r["http_status"], r["error_code"]) for r in records] == [
        ("failed", 200, "UNCONFIRMED_2XX")
    ] * len(USERS)
    assert all(r["message"].startswith(UNPROVEN[kind]) for r in records), records
    assert "failed with UNCONFIRMED_2XX: 3" in done.stdout


def test_an_unproven_2xx_is_retried_as_may_have_applied(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """The retry finds the user gone: not_found, noted as deleted by the earlier request."""
    server = fake_server("--success-body", "html", users=USERS)
    audit = tmp_path / "audit.jsonl"
    source = _input(tmp_path, USERS)

    done = _delete(server.base_url, source, audit)
    verified = run_cli("verify", str(audit), "--input", str(source))

    records = row_records(audit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(r["outcome"], r["attempts"]) for r in records] == [("not_found", 2)] * len(USERS)
    assert {r["note"] for r in records} == {"an earlier request of this run probably deleted it"}
    assert server.stats()["deletes_by_uid"] == dict.fromkeys(USERS, 2)
    assert verified.returncode == 0, verified.stdout


def test_a_read_back_answered_with_html_is_unknown_not_present(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """check through a captive portal: every read is unknown, none is taken as 'still present'."""
    api = fake_server(users=USERS)
    portal = fake_server("--portal")
    audit = tmp_path / "audit.jsonl"
    assert _delete(api.base_url, _input(tmp_path, USERS), audit).returncode == 0

    done = run_cli("check", str(audit), "--base-url", portal.base_url)

    results = Counter(r["result"] for r in audit_lines(audit) if r.get("event") == "read_back")
    assert done.returncode == 1, done.stdout + done.stderr
    assert results == {"unknown": len(USERS)}
    assert "0 still returned by the API, 3 without a usable answer" in done.stdout


# --- the key never comes back through the server's words ---------------------------------------


def test_a_key_quoted_by_the_server_is_masked_everywhere(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Audit lines, summary, --summary-json, logs and reports show the server's message masked."""
    server = fake_server("--all-exist", "--quote-key", "--revoke-key-after", "2")
    audit = tmp_path / "audit.jsonl"
    summary = tmp_path / "summary.json"
    html_report = tmp_path / "report.html"

    done = _delete(
        server.base_url, _input(tmp_path, [f"u{n}" for n in range(6)]), audit,
        "--concurrency", "1", "--summary-json", str(summary), "--log-level", "debug",
    )  # fmt: skip
    text_report = run_cli("report", str(audit), "--html", str(html_report))
    json_report = run_cli("report", str(audit), "--json")

    masked = "The key *** does not exist for this app."
    failed = [r for r in row_records(audit) if r["outcome"] == "failed"]
    assert done.returncode == 3, done.stdout + done.stderr
    assert [(r["error_code"], r["message"]) for r in failed] == [
        ("AUTH_ERR_APIKEY_NOT_FOUND", masked)
    ]
    assert f"stopped because: AUTH_ERR_APIKEY_NOT_FOUND: {masked}" in done.stdout
    assert json.loads(summary.read_text())["fatal_message"] == masked
    assert masked in done.stderr  # the run_aborted log event
    outputs = {
        "stdout": done.stdout,
        "stderr": done.stderr,
        "audit": audit.read_text(),
        "summary": summary.read_text(),
        "report": text_report.stdout + text_report.stderr,
        "json report": json_report.stdout,
        "html report": html_report.read_text(),
    }
    assert [name for name, text in outputs.items() if API_KEY in text] == []


# --- wrong place: the credential check must find CometChat's API --------------------------------


@pytest.mark.parametrize("path", ["/v2", ""], ids=["v2", "no-version"])
def test_a_base_url_with_the_wrong_path_sends_nothing(
    fake_server: FakeFactory, tmp_path: Path, path: str
) -> None:
    """/v2 or no /v3: the check gets a 404 page, the run stops with exit 3 before any DELETE."""
    server = fake_server(users=USERS)
    audit = tmp_path / "audit.jsonl"
    base_url = server.base_url.removesuffix("/v3") + path

    done = _delete(base_url, _input(tmp_path, USERS), audit)

    stats = server.stats()
    assert done.returncode == 3, done.stdout + done.stderr
    assert "stopped because: NOT_THE_API: the credential check" in done.stdout
    assert "HTTP 404 with error ERR_NOT_FOUND" in done.stdout
    assert (stats["requests"], stats["deletes_by_uid"], row_records(audit)) == (1, {}, [])


def test_a_redirect_on_the_credential_check_sends_nothing(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A redirecting proxy in front: exit 3, no DELETE to it, nothing to where it points."""
    target = fake_server(users=USERS)
    proxy = fake_server("--redirect-to", target.base_url.removesuffix("/v3"))
    audit = tmp_path / "audit.jsonl"

    done = _delete(proxy.base_url, _input(tmp_path, USERS), audit)

    assert done.returncode == 3, done.stdout + done.stderr
    assert "HTTP 307, a redirect (never followed)" in done.stdout
    assert (proxy.stats()["requests"], target.stats()["requests"]) == (1, 0)
    assert row_records(audit) == []


def test_a_captive_portal_on_the_credential_check_sends_nothing(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """An HTML 200 is not the API: exit 3, and not a single DELETE is taken as done."""
    portal = fake_server("--portal")
    audit = tmp_path / "audit.jsonl"

    done = _delete(portal.base_url, _input(tmp_path, USERS), audit)

    assert done.returncode == 3, done.stdout + done.stderr
    assert "HTTP 200 with a body that is not JSON" in done.stdout
    assert portal.stats()["requests"] == 1
    assert row_records(audit) == []


# --- unbounded answers ---------------------------------------------------------------------------

# Run the CLI under a parent that reports its peak memory: RUSAGE_CHILDREN of a process whose
# only child is the CLI.
_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(done.returncode)
"""
# A CLI run peaks near 60 MB here; reading one 200 MB answer whole costs far more than this.
_RSS_BOUND_KB = 150 * 1024


def test_a_huge_answer_is_not_read_and_memory_stays_bounded(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A 200 MB answer streamed by the server: cut at 64 KiB, retried; the CLI stays small."""
    server = fake_server("--success-body", "huge", users=USERS[:1])
    audit = tmp_path / "audit.jsonl"
    peak = tmp_path / "peak-rss-kb"

    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(peak), sys.executable, "-m", "bulkdelete",
         "delete", str(_input(tmp_path, USERS[:1])), "--base-url", server.base_url,
         "--audit", str(audit), "--no-progress", "--max-attempts", "2", "--batch-size", "1"],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip

    records = row_records(audit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(r["outcome"], r["attempts"], r["note"]) for r in records] == [
        ("not_found", 2, "an earlier request of this run probably deleted it")
    ]
    assert int(peak.read_text()) < _RSS_BOUND_KB


def test_an_answer_too_large_on_every_attempt_is_failed(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """When no attempt gets a readable answer the row is failed with ANSWER_TOO_LARGE."""
    server = fake_server("--success-body", "huge", users=USERS)
    audit = tmp_path / "audit.jsonl"

    done = _delete(server.base_url, _input(tmp_path, USERS), audit, "--max-attempts", "1")

    assert done.returncode == 1, done.stdout + done.stderr
    assert {(r["outcome"], r["error_code"]) for r in row_records(audit)} == {
        ("failed", "ANSWER_TOO_LARGE")
    }
