"""The anchored head: every run prints where its audit ends, and `verify --expect-head` holds the
audit to it, run as real processes against the fake server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import FakeFactory, cli_env, run_cli

from bulkdelete.anchor import Expected, check_heads
from bulkdelete.audit import link
from bulkdelete.verification import Head, Verification

UIDS = [f"anchored-{n:03d}" for n in range(12)]
AUDIT_KEY = "anchor-test-key-5d1e"


def _env(key: str | None = None) -> dict[str, str]:
    env = cli_env()
    env.pop("BULKDELETE_AUDIT_KEY", None)
    if key:
        env["BULKDELETE_AUDIT_KEY"] = key
    return env


def _delete(
    base_url: str, source: Path, audit: Path, *extra: str, key: str | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    summary = audit.with_suffix(".summary.json")
    done = run_cli(
        "delete", str(source), "--base-url", base_url, "--audit", str(audit),
        "--summary-json", str(summary), *extra, env=_env(key),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(summary.read_text(encoding="utf-8"))


def _verify(audit: Path, *heads: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [arg for head in heads for arg in ("--expect-head", head)]
    return run_cli("verify", str(audit), *args, env=_env(key))


@pytest.fixture(scope="module")
def server_url(module_fake_server: FakeFactory) -> str:
    """One fake CometChat for the module: its first 8 UIDs exist."""
    return module_fake_server(users=UIDS[:8]).base_url


@pytest.fixture(scope="module")
def recorded(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run one delete; return its audit and the head its summary printed, checked."""
    root = tmp_path_factory.mktemp("anchored")
    source = root / "uids.txt"
    source.write_text("\n".join(UIDS) + "\n", encoding="utf-8")
    audit = root / "audit.jsonl"
    done, summary = _delete(server_url, source, audit)
    lines = audit.read_bytes().splitlines()
    head = f"{link(lines[-1], None)}:{len(lines)}"
    assert summary["audit_head"] == link(lines[-1], None)
    assert summary["audit_lines"] == len(lines)
    assert f"head (for verify --expect-head): {head}" in done.stdout
    return audit, head


@pytest.fixture
def anchored(recorded: tuple[Path, str], server_url: str, tmp_path: Path) -> tuple[Path, str, str]:
    """Return a copy of the recorded audit (each test may change it), its head, the server."""
    audit, head = recorded
    copy = tmp_path / "audit.jsonl"
    shutil.copyfile(audit, copy)
    return copy, head, server_url


def test_verify_passes_the_untouched_audit_at_the_head_the_summary_printed(
    anchored: tuple[Path, str, str],
) -> None:
    """The head and line count of the summary are where the audit ends: PASS, exit 0."""
    audit, head, _ = anchored
    for expected in (head, head.partition(":")[0], head.upper()):
        done = _verify(audit, expected)
        assert done.returncode == 0, done.stdout
        assert done.stdout.startswith("PASS: ")
    assert f"head: {head}" in _verify(audit).stdout


def test_verify_fails_an_audit_whose_last_line_was_removed(
    anchored: tuple[Path, str, str],
) -> None:
    """Cut after an honest line, the chain is intact, but the head says lines are missing."""
    audit, head, _ = anchored
    audit.write_bytes(b"".join(audit.read_bytes().splitlines(keepends=True)[:-1]))
    assert _verify(audit).returncode == 0  # the chain alone cannot tell

    for expected in (head, head.partition(":")[0]):
        done = _verify(audit, expected)
        assert done.returncode == 1, done.stdout
        assert done.stdout.startswith(f"FAIL: {audit}: ")
    done = _verify(audit, head)
    assert "holds 1 fewer lines than when the head was written down" in done.stdout


def test_verify_fails_an_audit_whose_last_line_was_edited(
    anchored: tuple[Path, str, str],
) -> None:
    """An edit of the last line breaks no link (no line follows it), but moves the head."""
    audit, head, _ = anchored
    data = audit.read_bytes()
    last = data.splitlines()[-1]
    edited = last.replace(b'"status":"completed"', b'"status":"completed" ')
    assert edited != last
    audit.write_bytes(data[: -len(last) - 1] + edited + b"\n")

    done = _verify(audit, head)

    assert done.returncode == 1, done.stdout
    assert "does not end at the expected head and no line of it has that head" in done.stdout


def test_verify_names_the_line_of_a_head_that_later_lines_followed(
    anchored: tuple[Path, str, str], tmp_path: Path
) -> None:
    """A second run appended: FAIL says which line the head was and how many follow; the
    second run's summary counts every line of the audit, the first run's too."""
    audit, head, base_url = anchored
    before = len(audit.read_bytes().splitlines())
    source = tmp_path / "more.txt"
    source.write_text("anchored-100\n", encoding="utf-8")
    _, summary = _delete(base_url, source, audit)
    after = audit.read_bytes().splitlines()
    assert summary["audit_lines"] == len(after)
    assert summary["audit_head"] == link(after[-1], None)

    done = _verify(audit, head)

    assert done.returncode == 1, done.stdout
    assert f"which is line {before}'s: {len(after) - before} lines follow it" in done.stdout
    assert _verify(audit, f"{summary['audit_head']}:{summary['audit_lines']}").returncode == 0


def test_a_read_back_prints_the_head_it_leaves(
    anchored: tuple[Path, str, str],
) -> None:
    """`check` appends to the audit: it prints the new head, which verify then accepts."""
    audit, _, base_url = anchored
    done = run_cli("check", str(audit), "--base-url", base_url, env=_env())
    assert done.returncode == 0, done.stdout + done.stderr
    lines = audit.read_bytes().splitlines()
    head = f"{link(lines[-1], None)}:{len(lines)}"
    assert f"head (for verify --expect-head): {head}" in done.stdout
    assert _verify(audit, head).returncode == 0


def test_verify_deleted_leaves_the_head_after_its_read_back_in_the_summary_json(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """With --verify-deleted the read-back appends after the run: --summary-json keeps the
    head the command left, which verify accepts."""
    server = fake_server(users=UIDS)
    source = tmp_path / "uids.txt"
    source.write_text("\n".join(UIDS) + "\n", encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    _, summary = _delete(server.base_url, source, audit, "--verify-deleted")
    lines = audit.read_bytes().splitlines()
    assert b'"check_finished"' in lines[-1]
    assert (summary["audit_head"], summary["audit_lines"]) == (link(lines[-1], None), len(lines))


def test_keyed_heads_need_the_key(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A keyed audit's head is an HMAC: verify checks it with the key, and cannot without."""
    server = fake_server(users=UIDS)
    source = tmp_path / "uids.txt"
    source.write_text("\n".join(UIDS[:3]) + "\n", encoding="utf-8")
    audit = tmp_path / "keyed.jsonl"
    _, summary = _delete(server.base_url, source, audit, key=AUDIT_KEY)
    head = f"{summary['audit_head']}:{summary['audit_lines']}"
    assert summary["audit_head"] == link(audit.read_bytes().splitlines()[-1], AUDIT_KEY.encode())

    assert _verify(audit, head, key=AUDIT_KEY).returncode == 0
    unkeyed = _verify(audit, head)
    assert unkeyed.returncode == 1
    assert "set BULKDELETE_AUDIT_KEY to check its head" in unkeyed.stdout


@pytest.mark.parametrize(
    ("heads", "said"),
    [
        (["abc"], "a head is 64 hex digits"),
        ([f"{'a' * 64}:x"], "a head is 64 hex digits"),
        (["a" * 64, "b" * 64], "--expect-head was given 2 times for 1 audits"),
    ],
)
def test_a_malformed_head_is_a_usage_error(tmp_path: Path, heads: list[str], said: str) -> None:
    """A head that is no HASH[:LINES], or not one per audit: one line, exit 2."""
    audit = tmp_path / "audit.jsonl"
    audit.write_text("{}\n", encoding="utf-8")
    done = _verify(audit, *heads)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_check_heads_needs_lines_in_the_audit() -> None:
    """An audit without a complete line has no head to end at."""
    empty = Verification(
        ok=True, findings=(), lines=0, runs=0, head=None, heads=(Head("a.jsonl", None, 0),)
    )
    checked = check_heads(empty, [Expected.parse("0" * 64)], key=None)
    assert not checked.ok
    assert "holds no complete line" in checked.findings[0].problem


def test_same_last_line_with_another_line_count_fails() -> None:
    """The right last line but another count: lines went missing or came in before it."""
    v = Verification(
        ok=True, findings=(), lines=5, runs=1, head="f" * 64, heads=(Head("a", "f" * 64, 5),)
    )
    assert check_heads(v, [Expected("f" * 64, 5)], key=None) is v
    checked = check_heads(v, [Expected("f" * 64, 7)], key=None)
    assert "holds 5 lines, not 7" in checked.findings[0].problem
