"""Proxies: the variables read as curl and requests read them, and the key only ever tunnelled.

Unit tests of ``proxy_for`` and of the settings' refusals, then the real CLI through a loopback
proxy that records every byte it is sent, to an HTTPS fake server.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from helpers import API_KEY, audit_lines, cli_env, row_records
from loopback_proxy import LoopbackProxy

from bulkdelete.errors import UsageError
from bulkdelete.fake import FakeConfig, FakeServer
from bulkdelete.proxy import bypassed, proxy_for, proxy_passwords
from bulkdelete.settings import Secret, Settings

API = "https://app.api-eu.cometchat.io/v3"
PROXY = "http://proxy.corp.test:3128"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": PROXY}, PROXY),
        ({"https_proxy": PROXY}, PROXY),
        ({"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, PROXY),
        ({"https_proxy": "", "HTTPS_PROXY": PROXY}, None),
        ({"https_proxy": "  "}, None),
        ({"HTTP_PROXY": PROXY}, None),
        ({"ALL_PROXY": PROXY}, PROXY),
        ({"all_proxy": PROXY, "HTTPS_PROXY": "http://first:1"}, "http://first:1"),
        ({"HTTPS_PROXY": "proxy.corp.test:3128"}, PROXY),
    ],
    ids=[
        "none", "upper", "lower", "lower-wins", "empty-lower-means-none", "blank", "http-only",
        "all", "scheme-first", "no-scheme",
    ],
)  # fmt: skip
def test_the_proxy_for_an_https_url(environ: dict[str, str], expected: str | None) -> None:
    """https_proxy, then HTTPS_PROXY, then all_proxy; set but empty means none."""
    assert expected == proxy_for(API, environ)


def test_an_http_url_takes_http_proxy() -> None:
    """A plain http:// URL uses http_proxy, not https_proxy."""
    environ = {"HTTPS_PROXY": "http://tls-only:1", "HTTP_PROXY": PROXY}
    expected = PROXY
    assert expected == proxy_for("http://127.0.0.1:8080/v3", environ)


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", API, True),
        ("app.api-eu.cometchat.io", API, True),
        ("cometchat.io", API, True),
        (".cometchat.io", API, True),
        ("*.cometchat.io", API, True),
        ("COMETCHAT.IO", API, True),
        ("chat.io", API, False),
        ("api-eu.cometchat.io:443", API, True),
        ("api-eu.cometchat.io:8443", API, False),
        ("localhost, 127.0.0.1", "https://127.0.0.1:9443/v3", True),
        ("127.0.0.0/8", "https://127.0.0.1:9443/v3", True),
        ("10.0.0.0/8", "https://127.0.0.1:9443/v3", False),
        ("127.0.0.1:9443", "https://127.0.0.1:9443/v3", True),
        ("::1", "https://[::1]:9443/v3", True),
        ("[::1]:9443", "https://[::1]:9443/v3", True),
        ("127.0.0.0/8", API, False),
        ("", API, False),
    ],
)
def test_no_proxy_entries(no_proxy: str, url: str, direct: bool) -> None:
    """Names match themselves and what is under them, addresses and CIDR blocks match IPs."""
    assert direct is bypassed(url, no_proxy)


def test_no_proxy_is_read_in_either_case() -> None:
    """NO_PROXY or no_proxy sends the host around the proxy."""
    for name in ("no_proxy", "NO_PROXY"):
        assert proxy_for(API, {"HTTPS_PROXY": PROXY, name: "cometchat.io"}) is None


def test_proxy_passwords_are_collected_for_the_logs_to_mask() -> None:
    """The password of every proxy variable, in either case, is handed to the redactor."""
    environ = {
        "https_proxy": "http://u:lower-pw@p:1",
        "HTTPS_PROXY": "http://u:upper-pw@p:1",
        "ALL_PROXY": "p:1",
        "HTTP_PROXY": "http://[bad",
    }
    expected = ["lower-pw", "upper-pw"]
    assert expected == proxy_passwords(environ)


def settings(base_url: str = API, proxy: str | None = PROXY) -> Settings:
    return Settings(base_url=base_url, api_key=Secret(API_KEY), audit_path=Path("a"), proxy=proxy)


@pytest.mark.parametrize(
    ("base_url", "proxy", "words"),
    [
        (API, "socks5://127.0.0.1:1080", "must be http://host:port or https://host:port"),
        (API, "http://", "must be http://host:port or https://host:port"),
        (API, "http://proxy:port", "not a URL"),
        ("http://127.0.0.1:8080/v3", PROXY, "would read the API key in clear"),
    ],
    ids=["socks", "no-host", "bad-port", "http-target"],
)
def test_a_proxy_that_cannot_tunnel_is_refused(base_url: str, proxy: str, words: str) -> None:
    """Only an HTTP CONNECT tunnel to an https:// API is accepted."""
    with pytest.raises(UsageError, match=words):
        settings(base_url, proxy)


def test_the_proxy_password_is_in_no_record_of_the_settings() -> None:
    """public() (the audit's settings) and repr() name the proxy without its credentials."""
    chosen = settings(proxy="http://alice:pw-123@proxy.corp.test:3128/")
    expected = "http://proxy.corp.test:3128"
    assert expected == chosen.public()["proxy"]
    assert "pw-123" not in repr(chosen)


# --- the real CLI through a loopback proxy ------------------------------------------------------

USERS = ("via-proxy-1", "via-proxy-2", "via-proxy-3")
PROXY_PASSWORD = "proxy-pw-41b7"


@dataclass
class Https:
    """An HTTPS fake CometChat and the CA that signed its certificate."""

    server: FakeServer
    ca_file: Path
    authority: trustme.CA


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[Https]:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with FakeServer(FakeConfig(api_key=API_KEY, users=frozenset(USERS)), tls=context) as s:
        yield Https(s, ca_file, authority)


async def _delete(
    base_url: str, tmp_path: Path, ca_file: Path | None, run: str = "1", **env: str
) -> tuple[int, str, Path]:
    """Run the real CLI as a subprocess (without blocking the servers' loop)."""
    source = tmp_path / "in.txt"
    source.write_text("\n".join(USERS) + "\n", encoding="utf-8")
    audit = tmp_path / f"audit-{run}.jsonl"
    ca = ["--ca-bundle", str(ca_file)] if ca_file else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulkdelete", "delete", str(source), "--base-url", base_url,
        "--audit", str(audit), "--no-progress", "--log-level", "debug", "--batch-size", "1", *ca,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=cli_env(**env),
    )  # fmt: skip
    output, _ = await process.communicate()
    return await process.wait(), output.decode(), audit


def _with_password(url: str) -> str:
    return url.replace("://", f"://tester:{PROXY_PASSWORD}@")


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http-proxy", "https-proxy"])
async def test_the_key_goes_through_the_proxy_only_inside_a_connect_tunnel(
    https: Https, tmp_path: Path, proxy_tls: bool
) -> None:
    """HTTPS_PROXY is honoured by CONNECT: the proxy sees the target and its credentials, never
    the key or the requests; NO_PROXY for the host then bypasses the same proxy."""
    tls = None
    if proxy_tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        https.authority.issue_cert("127.0.0.1").configure_cert(tls)
    async with LoopbackProxy(tls=tls) as proxy:
        proxied = await _delete(
            https.server.base_url, tmp_path, https.ca_file, HTTPS_PROXY=_with_password(proxy.url)
        )
        seen_through_proxy = bytes(proxy.received)
        direct = await _delete(
            https.server.base_url, tmp_path, https.ca_file, "2",
            HTTPS_PROXY=_with_password(proxy.url), NO_PROXY="localhost,127.0.0.1",
        )  # fmt: skip

    code, output, audit = proxied
    port = https.server.base_url.split(":")[2].split("/")[0]
    credentials = base64.b64encode(f"tester:{PROXY_PASSWORD}".encode())
    assert code == 0, output
    assert {"deleted"} == {r["outcome"] for r in row_records(audit)}
    assert set(proxy.request_lines) == {f"CONNECT 127.0.0.1:{port} HTTP/1.1"}
    assert b"Proxy-Authorization: Basic " + credentials in seen_through_proxy
    assert API_KEY.encode() not in seen_through_proxy
    assert b"/v3/users" not in seen_through_proxy  # the requests themselves went encrypted
    assert audit_lines(audit)[0]["settings"]["proxy"] == proxy.url
    for text in (output, audit.read_text()):
        assert PROXY_PASSWORD not in text
    code, output, audit = direct
    assert (code, len(proxy.received)) == (0, len(seen_through_proxy)), output
    assert {"not_found"} == {r["outcome"] for r in row_records(audit)}  # deleted by the first run
    assert audit_lines(audit)[0]["settings"]["proxy"] is None


async def test_a_proxy_for_a_plain_http_target_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """http:// has no tunnel: HTTP_PROXY would read the key in clear, so exit 2, nothing sent."""
    async with (
        FakeServer(FakeConfig(api_key=API_KEY, users=frozenset(USERS))) as server,
        LoopbackProxy() as proxy,
    ):
        code, output, audit = await _delete(server.base_url, tmp_path, None, HTTP_PROXY=proxy.url)
        requests = server.stats.requests
    assert code == 2, output
    assert "would read the API key in clear" in output
    assert len(output.strip().splitlines()) == 1
    assert (bytes(proxy.received), requests, audit.exists()) == (b"", 0, False)
