"""Test helpers: the fake CometChat server as a real process, the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bulkdelete.fakeserver import fetch_stats

API_KEY = "test-key-7f3a9c2e"  # distinctive, so a leak is easy to grep for


@dataclass
class FakeProcess:
    """A running ``bulkdelete fake-server`` subprocess."""

    process: subprocess.Popen[str]
    base_url: str

    def stats(self) -> dict[str, Any]:
        """Return the server's live counters from ``/_fake/stats``."""
        return fetch_stats(self.base_url)


def stop_process(process: subprocess.Popen[str]) -> None:
    """Stop a server process a test started: SIGTERM, SIGKILL if it lingers, close its pipe."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


class FakeFactory(Protocol):
    def __call__(self, *args: str, users: Sequence[str] = ..., key: str = ...) -> FakeProcess: ...


_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


def without_proxies(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` without proxy variables: a CI's proxy must not reroute loopback tests."""
    return {k: v for k, v in env.items() if k.lower() not in _PROXY_VARIABLES}


def cli_env(**extra: str) -> dict[str, str]:
    """Return a clean environment for the CLI: the test key, no inherited CometChat settings
    or proxies (a test that wants a proxy passes it in ``extra``)."""
    env = without_proxies({k: v for k, v in os.environ.items() if not k.startswith("COMETCHAT_")})
    env["COMETCHAT_API_KEY"] = API_KEY
    env.update(extra)
    return env


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``bulkdelete`` as a real subprocess and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "bulkdelete", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        check=False,
    )


def audit_lines(path: Path) -> list[dict[str, Any]]:
    """Return every record of an audit file, failing on a line that does not parse."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def row_records(path: Path) -> list[dict[str, Any]]:
    """Return the per-row records (those with an outcome) of an audit file."""
    return [r for r in audit_lines(path) if "outcome" in r]


Lines = list[bytes]


def remove_line(lines: Lines, k: int) -> Lines:
    """Return the audit lines without line index ``k``."""
    return [*lines[:k], *lines[k + 1 :]]


def duplicate_line(lines: Lines, k: int) -> Lines:
    """Return the audit lines with line index ``k`` written twice."""
    return [*lines[: k + 1], lines[k], *lines[k + 1 :]]


def move_line(lines: Lines, k: int) -> Lines:
    """Return the audit lines with lines ``k`` and ``k + 1`` swapped."""
    return [*lines[:k], lines[k + 1], lines[k], *lines[k + 2 :]]


def tampers(
    edit: Callable[[Lines, int], Lines],
) -> dict[str, tuple[Callable[[Lines, int], Lines], int]]:
    """Return the four ways to tamper with line index k, and how far past line k + 1
    (1-based) the chain first breaks for each."""
    return {
        "edited": (edit, 1),
        "removed": (remove_line, 0),
        "duplicated": (duplicate_line, 1),
        "moved": (move_line, 0),
    }


def wait_for_outcomes(audit: Path, count: int, timeout: float = 30) -> None:
    """Wait until a running process has written ``count`` outcome lines to ``audit``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if audit.exists() and audit.read_bytes().count(b'"outcome"') >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{audit} did not reach {count} outcomes in {timeout} s")
