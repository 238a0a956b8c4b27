"""Shared fixtures: fake CometChat servers started as real processes on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import API_KEY, FakeFactory, FakeProcess, cli_env, stop_process


@contextmanager
def _servers(directory: Path) -> Iterator[FakeFactory]:
    """Start fake CometChat servers on free loopback ports; stop them at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, users: Sequence[str] = (), key: str = API_KEY) -> FakeProcess:
        command = [sys.executable, "-m", "bulkdelete", "fake-server", "--port", "0", *args]
        if users:
            users_file = directory / f"server-users-{len(started)}.txt"
            users_file.write_text("\n".join(users) + "\n", encoding="utf-8")
            command += ["--users-file", str(users_file)]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=cli_env(COMETCHAT_API_KEY=key),
        )
        started.append(process)
        assert process.stdout is not None
        line = (
            process.stdout.readline().strip()
        )  # the first line is the base URL, or EOF on a crash
        if not line.startswith("http://"):
            process.kill()
            pytest.fail(f"the fake server did not start: {line!r}")
        return FakeProcess(process=process, base_url=line)

    try:
        yield start
    finally:
        for process in started:
            stop_process(process)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeFactory]:
    """Start fake CometChat servers for one test."""
    with _servers(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeFactory]:
    """Start fake CometChat servers shared by a module's tests (they must not clash on it)."""
    with _servers(tmp_path_factory.mktemp("servers")) as start:
        yield start
