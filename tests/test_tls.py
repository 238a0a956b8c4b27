"""TLS: verification is always on; --ca-bundle trusts a private CA. Real HTTPS on loopback."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from helpers import API_KEY, cli_env

from bulkdelete.fake import FakeConfig, FakeServer

USERS = frozenset({"tls-user-1", "tls-user-2"})


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[FakeServer, Path]]:
    """A fake CometChat over HTTPS with a certificate from a private CA; yields it and the CA."""
    authority = trustme.CA()
    tls = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.configure_cert(context)
    ca_file = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with FakeServer(FakeConfig(api_key=API_KEY, users=USERS), tls=context) as server:
        yield server, ca_file


async def _delete(base_url: str, source: Path, *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulkdelete", "delete", str(source), "--base-url", base_url,
        "--audit", str(source.with_suffix(".jsonl")), "--max-attempts", "2", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=cli_env(),
    )  # fmt: skip
    output, _ = await process.communicate()
    return await process.wait(), output.decode()


async def test_unknown_ca_is_refused_before_any_delete(
    https_server: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    """A certificate the system does not trust: exit 3 with TLS_ERROR, no DELETE sent."""
    server, _ = https_server
    source = tmp_path / "in.txt"
    source.write_text("\n".join(sorted(USERS)) + "\n", encoding="utf-8")

    code, output = await _delete(server.base_url, source)

    assert code == 3
    assert "TLS_ERROR" in output
    assert server.stats.deletes_by_uid == {}


async def test_ca_bundle_trusts_a_private_ca(
    https_server: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    """With --ca-bundle naming the private CA, the same run deletes every user."""
    server, ca_file = https_server
    source = tmp_path / "in.txt"
    source.write_text("\n".join(sorted(USERS)) + "\n", encoding="utf-8")

    code, output = await _delete(server.base_url, source, "--ca-bundle", str(ca_file))

    assert code == 0, output
    assert server.stats.deletes_by_uid == dict.fromkeys(USERS, 1)
