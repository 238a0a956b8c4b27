"""Signal handling around the CLI's asyncio programs: a graceful first signal, a quiet second."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FakeFactory, audit_lines, cli_env, wait_for_outcomes

from bulkdelete.launch import Ended, _run_program

UNRETRIEVED = "Future exception was never retrieved"


async def _signal_self(stop: asyncio.Event, times: int) -> None:
    """Send this process SIGINT ``times`` times (at most twice), each once the last was handled."""
    if times >= 1:
        os.kill(os.getpid(), signal.SIGINT)
        await stop.wait()
    if times >= 2:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.get_running_loop().create_future()  # the second signal cancels this


async def _cancelled_while_shielding_workers(stop: asyncio.Event) -> None:
    """Wait on a gather of workers the way ``run._Run._wait_workers`` does, and get cancelled."""
    worker = asyncio.create_task(asyncio.Event().wait())
    done = asyncio.gather(worker)
    try:
        await _signal_self(stop, 1)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(asyncio.shield(done), 60)
    finally:
        worker.cancel()  # as the run's TaskGroup does; ``done`` now holds a CancelledError
        await asyncio.wait([worker])


def _asyncio_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()  # an orphaned future reports itself when it is collected
    return [r.getMessage() for r in caplog.records if r.name == "asyncio"]


def test_second_signal_drops_the_orphaned_gather_report(caplog: pytest.LogCaptureFixture) -> None:
    """A gather left holding the second signal's CancelledError is not logged as an error."""
    ended = _run_program(_cancelled_while_shielding_workers)

    assert ended == Ended(None, signal.SIGINT)
    assert _asyncio_errors(caplog) == []


@pytest.mark.parametrize(
    ("signals", "error"),
    [(2, RuntimeError("boom")), (1, asyncio.CancelledError()), (0, asyncio.CancelledError())],
)
def test_other_unretrieved_reports_are_still_logged(
    signals: int, error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a CancelledError after the second signal is dropped; other reports reach the log."""

    async def program(stop: asyncio.Event) -> None:
        try:
            await _signal_self(stop, signals)
        finally:
            loop = asyncio.get_running_loop()
            loop.call_exception_handler({"message": UNRETRIEVED, "exception": error})

    _run_program(program)

    assert _asyncio_errors(caplog) == [UNRETRIEVED]


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
             "--base-url", server.base_url, "--audit", str(audit), "--yes"],
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
