"""Test helpers: the fake CometChat server as a real process, the real CLI as a subprocess."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from fakeclock import FakeClock

from bulkdelete import records
from bulkdelete.audit import AuditWriter, Pseudonyms
from bulkdelete.fake import fetch_stats
from bulkdelete.retry import pacer_and_policy
from bulkdelete.send import Api, Sender
from bulkdelete.settings import Secret, Settings
from bulkdelete.tally import Tally

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
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``bulkdelete`` as a real subprocess (in ``cwd``) and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "bulkdelete", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def audit_lines(path: Path) -> list[dict[str, Any]]:
    """Return every record of an audit file, failing on a line that does not parse."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def row_records(path: Path) -> list[dict[str, Any]]:
    """Return the per-row records (those with an outcome) of an audit file."""
    return [r for r in audit_lines(path) if "outcome" in r]


def run_settings(**changes: Any) -> records.RunSettings:
    """Return the settings record of a default run, with ``changes``."""
    settings = Settings(
        base_url="https://api.example/v3", api_key=Secret(API_KEY), audit_path=Path("audit.jsonl")
    )
    return dataclasses.replace(records.run_settings(settings), **changes)


def line_of(record: records.Record) -> dict[str, Any]:
    """Return a record as the JSON object its audit line holds (without ``prev``)."""
    decoded: dict[str, Any] = orjson.loads(records.encode(record))
    return decoded


def write_audit(path: Path, *lines: Mapping[str, Any]) -> Path:
    """Write ``lines`` to ``path`` as an audit (unchained, as tests of readers need no chain)."""
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


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


# A producer process for ``bulkdelete delete -``: it writes the steps of its plan (a JSON list) to
# stdout one line at a time. "<wait>" waits until the fake server has applied every valid UID
# written so far (20 s at most, then it goes on and exits 3: a run that waited for EOF);
# "<hang>" never ends, like a producer that keeps a cursor open.
_PRODUCER = """
import json, re, sys, time
from bulkdelete.fake import fetch_stats

base_url, plan = sys.argv[1], json.loads(sys.argv[2])
written, late = set(), False
for step in plan:
    if step == "<wait>":
        deadline = time.monotonic() + 20
        while not written <= set(fetch_stats(base_url)["applied"]):
            if time.monotonic() > deadline:
                late = True
                break
            time.sleep(0.05)
    elif step == "<hang>":
        time.sleep(600)
    else:
        sys.stdout.buffer.write(step.encode() + b"\\n")
        sys.stdout.flush()
        if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", step):
            written.add(step.lower())
sys.exit(3 if late else 0)
"""


@dataclass
class Piped:
    """``producer | bulkdelete ...``, both real processes."""

    producer: subprocess.Popen[bytes]
    bulkdelete: subprocess.Popen[str]

    def finish(self, timeout: float = 60) -> tuple[int, int, str, str]:
        """Wait for both; return (producer's exit, bulkdelete's exit, its stdout, its stderr)."""
        stdout, stderr = self.bulkdelete.communicate(timeout=timeout)
        return self.producer.wait(timeout=timeout), self.bulkdelete.returncode, stdout, stderr

    def stop(self) -> None:
        """Kill whichever process is still running, and close bulkdelete's pipes."""
        for process in (self.producer, self.bulkdelete):
            if process.poll() is None:
                process.kill()
                process.wait()
        for pipe in (self.bulkdelete.stdout, self.bulkdelete.stderr):
            if pipe is not None:
                pipe.close()


def pipe_into_cli(
    base_url: str, plan: Sequence[str], *args: str, env: dict[str, str] | None = None
) -> Piped:
    """Start a producer following ``plan`` and ``bulkdelete ARGS`` reading its output on stdin."""
    producer = subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, base_url, json.dumps(list(plan))],
        stdout=subprocess.PIPE,
        env=env or cli_env(),
    )
    bulkdelete = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", *args],
        stdin=producer.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or cli_env(),
    )
    assert producer.stdout is not None
    producer.stdout.close()  # bulkdelete holds the only reading end now
    return Piped(producer, bulkdelete)


def wait_until_applied(server: FakeProcess, uids: Sequence[str], timeout: float = 30) -> None:
    """Wait until the fake server has applied (deleted) every one of ``uids``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(uids) <= set(server.stats()["applied"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"the fake server did not apply {list(uids)} in {timeout} s")


@asynccontextmanager
async def scripted_sender(
    audit: Path, api: Api, *, key: str | None = None, lost: dict[str, str] | None = None
) -> AsyncIterator[Sender]:
    """Yield a soft run's sender over ``api`` (a scripted stand-in), writing to ``audit``, on a
    fake clock; with ``key``, the audit names UIDs by pseudonym."""
    settings = Settings(
        base_url="https://api.example/v3",
        api_key=Secret(API_KEY),
        audit_path=audit,
        max_attempts=3,
        audit_key=Secret(key) if key else None,
        uid_hash=key is not None,
    )
    pacer, policy = pacer_and_policy(settings, FakeClock().as_clock())
    async with AuditWriter(audit) as writer:
        yield Sender(
            api=api,
            pacer=pacer,
            policy=policy,
            audit=writer,
            tally=Tally(),
            run_id="run-2",
            permanent=False,
            pseudonyms=Pseudonyms.of_run(settings),
            lost=lost,
        )
