"""Signal handling around the CLI's asyncio programs: a graceful first signal, a quiet second."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import FakeFactory, audit_lines, cli_env, wait_for_outcomes


def _wait_for_text(path: Path, text: str, timeout: float = 30) -> None:
    """Wait until a running process has written ``text`` to ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(encoding="utf-8"):
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} did not show {text!r} in {timeout} s")


def test_second_sigint_exits_130_without_a_traceback(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """SIGINT, then SIGINT again while slow requests are in flight: exit 130, a clean stderr."""
    server = fake_server("--all-exist", "--slow-rate", "0.3", "--slow-seconds", "25")
    source = tmp_path / "uids.txt"
    source.write_text("".join(f"user-{n}\n" for n in range(400)), encoding="utf-8")
    audit, stderr = tmp_path / "a.jsonl", tmp_path / "stderr.txt"
    with stderr.open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bulkdelete", "delete", str(source),
             "--base-url", server.base_url, "--audit", str(audit), "--yes", "--batch-size", "1"],
            stdout=subprocess.DEVNULL, stderr=errors, env=cli_env(),
        )  # fmt: skip
    wait_for_outcomes(audit, 10)
    process.send_signal(signal.SIGINT)
    _wait_for_text(stderr, "stop_requested")  # the graceful stop is waiting on slow requests
    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=30) == 130
    logged = stderr.read_text(encoding="utf-8")
    assert "Traceback" not in logged
    assert "never retrieved" not in logged
    assert audit_lines(audit)[-1]["status"] == "interrupted"
