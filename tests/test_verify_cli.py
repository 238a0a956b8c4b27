"""`bulkdelete verify` on audits written by real processes: killed, stopped, resumed, idle."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import API_KEY, Lines, cli_env, run_cli, tampers, wait_for_outcomes

UIDS = [f"member-{n:04d}" for n in range(300)]
AUDIT_KEY = "verify-cli-key-41c9"


@dataclasses.dataclass(frozen=True)
class Recorded:
    """Audits written by the real CLI, and the inputs they read."""

    source: Path
    audit: Path  # killed, then stopped with SIGTERM, then resumed to the end, then idle
    keyed_source: Path
    keyed: Path  # one run with BULKDELETE_AUDIT_KEY set


def _env(**extra: str) -> dict[str, str]:
    """Return the CLI's environment with no audit key but the one given here."""
    env = cli_env(**extra)
    if "BULKDELETE_AUDIT_KEY" not in extra:
        env.pop("BULKDELETE_AUDIT_KEY", None)
    return env


def _csv(path: Path, uids: list[str]) -> Path:
    path.write_text("uid,email\n" + "".join(f"{u},{u}@example.com\n" for u in uids), "utf-8")
    return path


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start one fake CometChat for the module (conftest's fixture lives per test)."""
    users = _csv(tmp_path_factory.mktemp("server") / "users.csv", UIDS)
    command = [sys.executable, "-m", "bulkdelete", "fake-server", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--latency", "0.02", "--users-file", str(users)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(COMETCHAT_API_KEY=API_KEY),
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    try:
        assert url.startswith("http://"), f"the fake server did not start: {url!r}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=5)
        process.stdout.close()


def _interrupt(args: list[str], audit: Path, after: int, signum: signal.Signals) -> int:
    """Start a delete, wait for ``after`` outcome lines in the audit, signal it, return its code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    wait_for_outcomes(audit, after)
    process.send_signal(signum)
    return process.wait(timeout=15)


@pytest.fixture(scope="module")
def recorded(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Write the audits once: four runs into one audit, and a keyed run into another."""
    root = tmp_path_factory.mktemp("verify")
    source, audit = _csv(root / "users.csv", UIDS), root / "audit.jsonl"
    args = ["delete", str(source), "--base-url", server_url, "--audit", str(audit)]
    args += ["--concurrency", "8", "--rate", "400"]
    assert _interrupt(args, audit, 60, signal.SIGKILL) == -signal.SIGKILL
    assert _interrupt([*args, "--resume"], audit, 150, signal.SIGTERM) == 143
    for _ in range(2):  # the second resume finds nothing left to do
        done = run_cli(*args, "--resume", env=_env())
        assert done.returncode == 0, done.stdout + done.stderr
    keyed_source, keyed = _csv(root / "keyed.csv", UIDS[:20]), root / "keyed.jsonl"
    keyed_args = ["delete", str(keyed_source), "--base-url", server_url, "--audit", str(keyed)]
    done = run_cli(*keyed_args, env=_env(BULKDELETE_AUDIT_KEY=AUDIT_KEY))
    assert done.returncode == 0, done.stdout + done.stderr
    return Recorded(source, audit, keyed_source, keyed)


def _verify(*args: str | Path, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = _env(BULKDELETE_AUDIT_KEY=key) if key else _env()
    return run_cli("verify", *map(str, args), env=env)


def _middle_outcome(lines: Lines) -> int:
    """Return the index of a deleted-row line near the middle of the audit."""
    return next(n for n in range(len(lines) // 2, len(lines)) if b'"outcome":"deleted"' in lines[n])


def _edit(lines: Lines, k: int) -> Lines:
    edited = lines[k].replace(b'"outcome":"deleted"', b'"outcome":"failed"')
    return [*lines[:k], edited, *lines[k + 1 :]]


TAMPERS = tampers(_edit)


def test_verify_passes_a_killed_stopped_and_resumed_audit(recorded: Recorded) -> None:
    """Four runs (killed, SIGTERM'd, resumed, idle) verify against their input: exit 0, PASS."""
    done = _verify(recorded.audit, "--input", recorded.source)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("PASS: ")
    assert "4 runs" in done.stdout
    assert "300 input rows" in done.stdout
    assert "head: " in done.stdout
    assert "has no run_finished line: it was killed" in done.stdout


@pytest.mark.parametrize("how", TAMPERS)
def test_verify_fails_naming_a_tampered_line(recorded: Recorded, tmp_path: Path, how: str) -> None:
    """One line edited, removed, duplicated or moved: exit 1 and FAIL naming the line."""
    lines = recorded.audit.read_bytes().splitlines(keepends=True)
    k = _middle_outcome(lines)
    change, offset = TAMPERS[how]
    copy = tmp_path / "audit.jsonl"
    copy.write_bytes(b"".join(change(lines, k)))

    done = _verify(copy, "--input", recorded.source)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"FAIL: {copy}:{k + 1 + offset}: prev "), done.stdout


def test_verify_fails_when_the_input_is_not_the_one_the_runs_read(
    recorded: Recorded, tmp_path: Path
) -> None:
    """An input with one byte changed: exit 1, naming the first run_started line."""
    changed = tmp_path / "users.csv"
    data = bytearray(recorded.source.read_bytes())
    data[-2] ^= 0x01  # the last UID's last character
    changed.write_bytes(bytes(data))

    done = _verify(recorded.audit, "--input", changed)

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"FAIL: {recorded.audit}:1: input {changed} (sha256 ")


def test_verify_reads_the_audit_key_from_the_environment(recorded: Recorded) -> None:
    """A keyed audit passes with BULKDELETE_AUDIT_KEY set, and is no PASS without it."""
    keyed = _verify(recorded.keyed, "--input", recorded.keyed_source, key=AUDIT_KEY)
    unkeyed = _verify(recorded.keyed, "--input", recorded.keyed_source)

    assert (keyed.returncode, unkeyed.returncode) == (0, 1), keyed.stdout + unkeyed.stdout
    assert keyed.stdout.startswith("PASS: ")
    assert unkeyed.stdout.startswith(f"FAIL: {recorded.keyed}:1: run ")
    assert "chain is keyed: set BULKDELETE_AUDIT_KEY to verify it" in unkeyed.stdout
