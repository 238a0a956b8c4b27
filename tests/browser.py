"""Drive headless Chromium over the DevTools protocol: load pages, collect errors, screenshot,
probe, print.

Chromium starts with ``--remote-debugging-port=0`` and prints ``DevTools listening on ws://…``
on stderr once its port is open. ``load_pages`` connects there with aiohttp's websocket client
and, per page, opens a tab, enables the Runtime, Log and Page domains, navigates, waits for the
load event and takes a PNG screenshot of the viewport (of the whole page with ``full_page``).
It then evaluates each probe (a JavaScript expression, through DevTools: a page's CSP does not
apply to it) on screen, and again with the print media emulated, and prints the page to PDF as
Chromium's print dialog would (``Page.printToPDF``, A4). A page's errors are its uncaught
exceptions (``Runtime.exceptionThrown``), ``console.error``/``console.assert`` calls
(``Runtime.consoleAPICalled``), browser log entries of level error (``Log.entryAdded``: CSP
violations and failed loads land there), and a navigation that failed outright.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

SETUP = "apt-get update && apt-get install -y chromium"  # as root, on Debian
# Headless in a container: no sandbox or GPU there, and nothing that phones home on its own.
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
_TIMEOUT = 30.0  # for the whole browser session


@dataclass(frozen=True)
class PageLoad:
    """What loading one page showed: its errors, a PNG screenshot, what each probe returned on
    screen and in print, and the page printed to PDF."""

    url: str
    errors: tuple[str, ...]
    screenshot: bytes
    probes: tuple[Any, ...] = ()
    printed: tuple[Any, ...] = ()  # the probes again, under the print media
    pdf: bytes = b""


class _DevTools:
    """A minimal DevTools protocol client: numbered commands, events kept per session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.loaded: dict[str, asyncio.Event] = {}

    async def read(self) -> None:
        async for message in self._ws:
            data = message.json()
            if "id" in data:
                self._replies.pop(data["id"]).set_result(data)
                continue
            session = data.get("sessionId", "")
            self.events.setdefault(session, []).append(data)
            if data["method"] == "Page.loadEventFired":
                self.loaded.setdefault(session, asyncio.Event()).set()
        for reply in self._replies.values():  # the browser closed the connection
            reply.set_exception(RuntimeError("DevTools connection closed"))

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        number = next(self._ids)
        reply = self._replies[number] = asyncio.get_running_loop().create_future()
        command = {"id": number, "method": method, "params": params}
        await self._ws.send_json(command | ({"sessionId": session} if session else {}))
        data = await reply
        if "error" in data:
            raise RuntimeError(f"DevTools {method} failed: {data['error']}")
        return data["result"]

    async def probe(self, session: str, probes: Sequence[str]) -> tuple[Any, ...]:
        results = []
        for expression in probes:
            found = await self.send(
                "Runtime.evaluate", session, expression=expression, returnByValue=True
            )
            if "exceptionDetails" in found:
                raise RuntimeError(f"probe {expression!r} failed: {found['exceptionDetails']}")
            results.append(found["result"].get("value"))
        return tuple(results)

    async def load(
        self, url: str, width: int, height: int, *, full_page: bool, probes: Sequence[str]
    ) -> PageLoad:
        target = (await self.send("Target.createTarget", url="about:blank"))["targetId"]
        session = (await self.send("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        loaded = self.loaded.setdefault(session, asyncio.Event())
        for domain in ("Runtime", "Log", "Page"):
            await self.send(f"{domain}.enable", session)
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        navigation = await self.send("Page.navigate", session, url=url)
        await loaded.wait()
        shot = await self.send(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=full_page
        )
        if full_page:  # the whole page: the viewport grown to the content's height
            size = (await self.send("Page.getLayoutMetrics", session))["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
            shot = await self.send(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip=clip,
            )
        on_screen = await self.probe(session, probes)
        await self.send("Emulation.setEmulatedMedia", session, media="print")
        printed = await self.probe(session, probes)
        await self.send("Emulation.setEmulatedMedia", session, media="")
        pdf = await self.send(
            "Page.printToPDF", session, paperWidth=8.27, paperHeight=11.69, printBackground=False
        )
        await self.send("Target.closeTarget", targetId=target)
        errors = [_error(event) for event in self.events.get(session, [])]
        errors.append(
            f"navigation: {navigation['errorText']}" if "errorText" in navigation else None
        )
        return PageLoad(
            url,
            tuple(filter(None, errors)),
            base64.b64decode(shot["data"]),
            on_screen,
            printed,
            base64.b64decode(pdf["data"]),
        )


def _error(event: dict[str, Any]) -> str | None:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return f"exception: {details.get('exception', {}).get('description') or details['text']}"
    if method == "Runtime.consoleAPICalled" and params["type"] in {"error", "assert"}:
        words = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
        return f"console.{params['type']}: {' '.join(words)}"
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        return f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}".strip()
    return None


async def _load_all(
    chromium: str,
    urls: Sequence[str],
    profile: Path,
    width: int,
    height: int,
    *,
    full_page: bool,
    probes: Sequence[str],
) -> list[PageLoad]:
    process = await asyncio.create_subprocess_exec(
        chromium,
        *_FLAGS,
        f"--user-data-dir={profile}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(_TIMEOUT):
            line = ""
            while not line.startswith("DevTools listening on "):
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise RuntimeError(f"chromium exited with {await process.wait()} at start")
            drain = asyncio.create_task(process.stderr.read())  # a full pipe stalls chromium
            endpoint = line.removeprefix("DevTools listening on ").strip()
            async with aiohttp.ClientSession() as http, http.ws_connect(endpoint) as ws:
                devtools = _DevTools(ws)
                reader = asyncio.create_task(devtools.read())
                pages = [
                    await devtools.load(url, width, height, full_page=full_page, probes=probes)
                    for url in urls
                ]
                with contextlib.suppress(RuntimeError, aiohttp.ClientError, ConnectionError):
                    await devtools.send("Browser.close")
                await reader
            await process.wait()
            await drain
        return pages
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def load_pages(
    urls: Sequence[str],
    *,
    profile: Path,
    width: int = 1200,
    height: int = 1600,
    full_page: bool = False,
    probes: Sequence[str] = (),
) -> list[PageLoad]:
    """Load each URL in one headless Chromium, in order; ``profile`` is a fresh directory.

    ``probes`` are JavaScript expressions evaluated on each page, on screen and in print; their
    values must be JSON. Raises ``RuntimeError`` when chromium is not on PATH: a missing browser
    fails the test.
    """
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError(f"chromium is not on PATH: run the test setup (`{SETUP}`)")
    return asyncio.run(
        _load_all(chromium, urls, profile, width, height, full_page=full_page, probes=probes)
    )


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Return ``(channels, width, rows)`` of an 8-bit RGB or RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    header, chunks, at = b"", [], 8
    while at < len(data):
        (size,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
        body, at = data[at + 8 : at + 8 + size], at + 12 + size
        header = body if kind == b"IHDR" else header
        chunks += [body] if kind == b"IDAT" else []
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, colour, interlace) in {(8, 2, 0), (8, 6, 0)}, "not 8-bit RGB(A), or interlaced"
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels + 1
    rows, previous = [], bytes(stride - 1)
    for start in range(0, height * stride, stride):
        previous = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + stride]), previous, channels
        )
        rows.append(previous)
    return channels, width, rows


def _unfilter(kind: int, line: bytearray, up: bytes, channels: int) -> bytes:
    if kind == 2:  # Up, the most common: one pass without the per-byte branches below
        return bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
    for i in range(len(line) if kind else 0):
        left = line[i - channels] if i >= channels else 0
        corner = up[i - channels] if i >= channels else 0
        if kind == 1:
            guess = left
        elif kind == 3:
            guess = (left + up[i]) // 2
        else:  # Paeth
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            guess = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
        line[i] = (line[i] + guess) & 0xFF
    return bytes(line)


def count_colours(png: bytes, *colours: str, tolerance: int = 24) -> list[int]:
    """Count the pixels of a PNG within ``tolerance`` of each ``#rrggbb`` colour, per channel."""
    channels, _width, rows = decode_png(png)
    pixels: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        pixels.update(zip(row[0::channels], row[1::channels], row[2::channels], strict=True))
    counts = []
    for colour in colours:
        rgb = bytes.fromhex(colour.removeprefix("#"))
        near = (
            n
            for px, n in pixels.items()
            if max(abs(a - b) for a, b in zip(px, rgb, strict=True)) <= tolerance
        )
        counts.append(sum(near))
    return counts
