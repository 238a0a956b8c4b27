"""Pacing benchmarks: does bulkdelete pace itself by what CometChat sends, leave room for the
live app, survive a restart, keep up?

Every server is a ``bulkdelete fake-server`` in a process of its own on 127.0.0.1. Scenarios 1-5
run the fake as CometChat documents it (limit and remaining on every answer, Retry-After and the
reset time only on a 429, windows on the server clock's minute), once with each header spelling;
6.1-6.5 are the same five against the fake's old behaviour (a reset time on every answer,
windows from the first request), so that neither regresses:

1  no other traffic, 3,000/min: our requests per whole window / the limit (>= 0.97 each);
   429s / our requests over the whole run (<= 0.5 %).
2  live traffic at 15/s: live requests refused (0); ours / (limit - live) per whole window
   (>= 0.8 each).
3  bursty live traffic, 10/s with x3 for the last 5 s of every 20 s (on the documented fake a
   burst ends as each window ends): refused (0); ours / (limit - live) (>= 0.7 each).
4  a run stopped with SIGTERM 30 s in (15 s into a minute) and started again at once with
   ``--resume``: (ours + live) per whole window / the limit (>= 0.95 each); seconds without one
   request of ours while the window still had 5 % of its budget left (0).
5  200 ms answers, 10,000/min: ours per whole window / the limit (>= 0.97 each).
7  an unlimited server: bulkdelete's deletes per second / a bare aiohttp loop, the "evidence
   floor" (``bench/_loops.py floor``) / that loop, and bulkdelete / the floor, / a sequential
   ``requests`` loop, / ``xargs -P`` with curl. Each client on one CPU, the server on another.
   For information: issue 13 retired the 0.9 target (``bench/cost.py`` counts instructions).
8  peak RSS for a 1,000,000-row input with ``--dry-run`` (<= 60 MB); how a real run's peak RSS
   grows with the input beyond the dry run's growth (<= 8 B/row).

Whole windows are the server's windows that began after the run's first request and ended
before it was stopped; every figure of 1-6 is taken from them only, from the fake server's
per-second timeline (``GET /_fake/stats``), never from the client. Scenarios 1-5 of one mode run
at the same time (each with its own server and client: they are light); the modes, 7 and 8 run
one after another. Scenarios 1-3 also report how far the progress events' rate (from which the
ETA is computed) was from the rate the whole windows gave, after the first minute.

Run from the repository root (about 25 minutes; ``--quick`` about 6, for the harness only):

    .venv/bin/python bench/pacing.py [--quick] [--keep-dir] [--only 1234568]

It prints a table and writes ``BENCHMARKS.md`` and ``bench/throughput.png``. Needs matplotlib and
requests (the ``bench`` extra); curl and ``/usr/bin/time`` are used when present. Exit status 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import functools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkdelete.fake import fetch_stats

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
API_KEY = "bench-pacing-3f9a1c"  # a fixed test key: the fake servers accept only this one
CLI = (sys.executable, "-m", "bulkdelete")

# bulkdelete's flags per scenario, on top of --base-url/--audit/--yes/--log-level. Pacing is left
# to the defaults on purpose (1-6): adding a flag to a scenario is one edit here.
# One DELETE per user: these scenarios measure pacing and cost per request (bulk calls:
# bench/bulk.py).
TOOL_FLAGS: dict[str, tuple[str, ...]] = {
    "paced": ("--batch-size", "1"),
    "7": ("--rate", "1000000", "--concurrency", "32", "--batch-size", "1"),
    "8": ("--rate", "1000000", "--batch-size", "1"),
}
BULK_SECTION = "\n## Bulk calls (bench/bulk.py)"  # kept as it is when this bench rewrites the page
CONCURRENCY_7 = 32  # the aiohttp loop and xargs -P use the same number as TOOL_FLAGS["7"]
# Scenario 7 runs each contender on one CPU and the server on another (when there are two), so
# neither steals the other's core and rounds differ less.
_CPUS = sorted(os.sched_getaffinity(0))
CLIENT_CPU_7, SERVER_CPU_7 = (_CPUS[0], _CPUS[-1]) if len(_CPUS) >= 2 else (None, None)
PINNING_7 = (
    "" if CLIENT_CPU_7 is None else f" (clients on CPU {CLIENT_CPU_7}, server on {SERVER_CPU_7})"
)
EXCESS_ROW_BYTES = 8.0  # scenario 8: allowed real-run growth per row beyond the dry run's


@dataclass(frozen=True)
class Mode:
    """How the fake answers: as documented (one header spelling), or as it used to."""

    name: str
    prefix: str  # of the scenario numbers: "" or "6."
    tag: str  # in file names
    settings: dict[str, Any]  # FakeConfig fields


MODES = (
    Mode("documented, X-Rate-Limit", "", "old", {"header_style": "old"}),
    Mode("documented, X-RateLimit", "", "new", {"header_style": "new"}),
    Mode(
        "reset on every answer",
        "6.",
        "today",
        {"reset_on_every_answer": True, "window_from_first_request": True},
    ),
)
LIVE_RATE = 15.0  # scenario 2: 30 % of 3,000/min
BURSTS = {"live_rate": 10.0, "live_burst_factor": 3.0, "live_burst_seconds": 5.0,
          "live_burst_every": 20.0}  # fmt: skip
SLOW = {"limit": 10_000, "latency": 0.2}  # scenario 5
RESTART_AFTER = 30.0  # scenario 4: seconds the first run runs
RESTART_PHASE = 45.0  # scenario 4: seconds into a minute the first run starts (documented fake)
ROOM = 0.05  # scenario 4: a window with less than this share left has no budget to pause with
EVERY = "12345678"
MODE_ORDER = {mode.name: n for n, mode in enumerate(MODES)}


@dataclass(frozen=True)
class Profile:
    """Sizes and durations of one mode."""

    name: str
    limit: int  # scenarios 1-4: requests per window
    window: int  # seconds, whole so that windows are whole seconds of the timeline
    windows: int  # the runs of 1-6 are stopped this many windows after the first one began
    s7_rounds: int  # bulkdelete and the aiohttp loop run alternately this many times each
    s7_uids: int  # bulkdelete and the aiohttp loop
    s7_requests_uids: int  # the sequential requests loop
    s7_curl_uids: int  # xargs curl
    s8_dry_rows: int
    s8_small_rows: int
    s8_big_rows: int  # may be lowered at run time when a real run would take too long


# Scenario 7's inputs are sized for about 5 s or more each in the full mode. Quick windows are
# 6 s: the pacer then has to learn that they are not the documented minute, so their figures
# check the harness, not the pacer.
FULL = Profile("full", 3000, 60, 3, 5, 30_000, 3_000, 10_000, 1_000_000, 100_000, 1_000_000)
QUICK = Profile("quick", 300, 6, 6, 1, 4_000, 1_000, 2_000, 200_000, 20_000, 60_000)
REAL_RUN_BUDGET = 900.0  # seconds the big real run of scenario 8 may take before it is shrunk


class BenchError(Exception):
    """A scenario could not go on (a process did not start, a wait timed out)."""


@dataclass
class Row:
    """One row of the result table; ``ok`` is None for a figure reported for information."""

    scenario: str
    mode: str
    figure: str
    measured: str
    target: str
    ok: bool | None
    details: str

    @property
    def verdict(self) -> str:
        return "info" if self.ok is None else ("PASS" if self.ok else "FAIL")


@dataclass
class Series:
    """A scenario's per-second timeline, for the chart."""

    scenario: str  # 1-5
    mode: Mode
    timeline: dict[int, dict[str, int]]
    limit: int
    window: int
    whole: list[int]  # the whole windows, numbered from the timeline's start


@dataclass
class Bench:
    """The temporary directory, the processes started, the commands run and the results."""

    profile: Profile
    tmp: Path
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    loads: list[float] = field(default_factory=list)  # 1-minute load average at each scenario

    def sample_load(self) -> None:
        with self.lock:
            self.loads.append(os.getloadavg()[0])

    def log(self, message: str) -> None:
        with self.lock:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def row(self, *args: Any) -> None:
        with self.lock:
            self.rows.append(Row(*args))

    def note_command(
        self, scenario: str, args: Sequence[str], env: str = "", suffix: str = ""
    ) -> None:
        """Record a command for BENCHMARKS.md, with temporary paths and ports as placeholders."""
        text = (shlex.join(args) + suffix).replace(str(self.tmp), "$TMP")
        text = text.replace(f"{ROOT}/", "")
        text = text.replace(sys.executable, "python").replace("python -m bulkdelete", "bulkdelete")
        text = re.sub(r"http://127\.0\.0\.1:\d+/v3", "$BASE_URL", text)
        text = re.sub(r"audit-[\w.-]+\.jsonl", "audit.jsonl", text)
        with self.lock:
            if (scenario, env + text) not in self.commands:
                self.commands.append((scenario, env + text))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMETCHAT_")}
        env["COMETCHAT_API_KEY"] = API_KEY
        return env

    def popen(
        self, args: Sequence[str], log: Path, *, cpu: int | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``args`` with stderr (and stdout unless redirected) in ``log``.

        With ``cpu`` the process (and what it starts later) runs on that CPU only.
        """
        with log.open("ab") as out:
            kwargs.setdefault("stdout", out)
            process = subprocess.Popen(
                list(args),
                stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                stderr=out,
                env=self.env(),
                cwd=ROOT,
                **kwargs,
            )
        if cpu is not None:
            os.sched_setaffinity(process.pid, {cpu})
        with self.lock:
            self.processes.append(process)
        return process

    def cleanup(self) -> None:
        """End every process this bench started that is still running, one by one."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------------------------
# The fake server


@dataclass
class Fake:
    """A running fake server process."""

    process: subprocess.Popen[Any]
    base_url: str
    started: float  # time.monotonic() when its URL was read

    def stats(self) -> dict[str, Any]:
        """Return the server's counters, with the timeline's seconds as ints."""
        stats = fetch_stats(self.base_url, timeout=60)
        stats["timeline"] = {int(k): v for k, v in stats.get("timeline", {}).items()}
        return stats

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fake_command(settings: dict[str, Any]) -> list[str]:
    """Return the ``bulkdelete fake-server`` command serving ``settings`` (FakeConfig fields)."""
    args = [*CLI, "fake-server", "--port", "0"]
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    return args


@contextmanager
def fake_server(
    bench: Bench, scenario: str, settings: dict[str, Any], *, cpu: int | None = None
) -> Iterator[Fake]:
    """Run a fake server with ``settings`` for the ``with`` block (on ``cpu`` only, if given)."""
    args = fake_command(settings)
    bench.note_command(scenario, args, "COMETCHAT_API_KEY=... ")
    log = bench.tmp / f"server-{scenario}-{time.monotonic_ns()}.log"
    process = bench.popen(args, log, cpu=cpu, stdout=subprocess.PIPE)
    assert process.stdout is not None  # noqa: S101 - set by stdout=PIPE
    line = process.stdout.readline().decode().strip()  # EOF (empty) if the server crashed
    if not line.startswith("http"):
        process.kill()
        raise BenchError(f"fake server did not start: {log.read_text(errors='replace')[-500:]}")
    fake = Fake(process, line, time.monotonic())
    try:
        yield fake
    finally:
        fake.stop()


# ---------------------------------------------------------------------------------------------
# bulkdelete runs


def write_uids(path: Path, count: int, prefix: str, *, header: bool = True) -> Path:
    """Write a CSV of ``count`` UIDs (``uid`` header) or, without header, one UID a line."""
    with path.open("w", encoding="utf-8") as out:
        if header:
            out.write("uid\n")
        out.writelines(f"{prefix}-{n:07d}\n" for n in range(count))
    return path


def tool_args(bench: Bench, scenario: str, base_url: str, users: Path, *extra: str) -> list[str]:
    audit = bench.tmp / f"audit-{scenario}-{time.monotonic_ns()}.jsonl"
    return [
        *CLI, "delete", str(users), "--base-url", base_url, "--audit", str(audit), "--yes",
        "--log-level", "warning", *TOOL_FLAGS[scenario], *extra,
    ]  # fmt: skip


def tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])[-300:]


def stop_process(process: subprocess.Popen[Any], grace: float = 60.0) -> int:
    """SIGTERM (bulkdelete stops gracefully), then SIGKILL after ``grace``; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def window_sums(timeline: dict[int, dict[str, int]], key: str, start: int, end: int) -> int:
    return sum(timeline.get(second, {}).get(key, 0) for second in range(start, end))


# ---------------------------------------------------------------------------------------------
# Scenarios 1-6: pacing by the rate-limit headers


@dataclass
class Paced:
    """What one paced scenario left on its server, read from the server's timeline."""

    timeline: dict[int, dict[str, int]]
    limit: int
    window: int
    stopped: int  # the timeline second the run was stopped in
    live_sent: int
    live_refused: int

    def per_window(self, key: str, window: int) -> int:
        return window_sums(self.timeline, key, window * self.window, (window + 1) * self.window)

    def whole(self) -> list[int]:
        """Return the windows that began after our first request and ended before the stop."""
        ours = [s for s, row in self.timeline.items() if row["our_ok"] + row["our_429"]]
        first = min(ours, default=self.stopped)
        count = self.stopped // self.window
        return [w for w in range(count) if w * self.window >= first]

    def used(self, window: int) -> int:
        return self.per_window("our_ok", window) + self.per_window("live_ok", window)


def paced_settings(scenario: str, mode: Mode, profile: Profile) -> dict[str, Any]:
    """Return the fake's settings for paced scenario 1-5 in ``mode``."""
    settings: dict[str, Any] = {
        "all_exist": True,
        "limit": profile.limit,
        "window": profile.window,
        **mode.settings,
    }
    scale = profile.window / 60  # the quick profile's windows are shorter: so is everything
    if scenario == "2":
        settings["live_rate"] = LIVE_RATE * profile.limit / 3000 / scale
    if scenario == "3":
        settings |= BURSTS
        settings["live_rate"] = BURSTS["live_rate"] * profile.limit / 3000 / scale
        settings["live_burst_seconds"] = BURSTS["live_burst_seconds"] * scale
        settings["live_burst_every"] = BURSTS["live_burst_every"] * scale
    if scenario == "5":
        settings |= SLOW
        settings["limit"] = round(SLOW["limit"] * scale)
    return settings


def server_now(fake: Fake) -> float:
    """Return the fake server's clock (the bench runs it unskewed: the machine's clock)."""
    del fake
    return time.time()


def wait_for_timeline(fake: Fake, process: subprocess.Popen[Any], log: Path) -> float:
    """Wait until the server has counted a request; return its timeline's start (server time)."""
    began = time.monotonic()
    while (start := fake.stats().get("timeline_start")) is None:
        if process.poll() is not None or time.monotonic() - began > 30:
            raise BenchError(f"no request reached the server: {tail(log)}")
        time.sleep(0.2)
    return float(start)


def sleep_until(server_time: float, fake: Fake) -> None:
    time.sleep(max(0.0, server_time - server_now(fake)))


def start_client(
    bench: Bench, label: str, fake: Fake, users: Path, audit: Path, *extra: str
) -> tuple[subprocess.Popen[Any], Path]:
    """Start ``bulkdelete delete`` at its defaults, with progress events in its log."""
    args = [
        *CLI, "delete", str(users), "--base-url", fake.base_url, "--audit", str(audit), "--yes",
        "--log-level", "info", *TOOL_FLAGS["paced"], *extra,
    ]  # fmt: skip
    bench.note_command(label, args, "COMETCHAT_API_KEY=... ")
    log = bench.tmp / f"client-{label}-{time.monotonic_ns()}.log"
    return bench.popen(args, log), log


def progress_rates(log: Path, after: float) -> list[float]:
    """Return the ``rate`` of every progress event the run logged ``after`` seconds in or later.

    The events come every 5 s of the run (the n-th at 5n s), then one at the end.
    """
    rates = []
    for line in log.read_text("utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "progress":
            rates.append(event.get("rate"))
    return [rate for n, rate in enumerate(rates[:-1], 1) if n * 5 >= after and rate is not None]


def run_paced(bench: Bench, scenario: str, mode: Mode) -> None:
    """Run paced scenario 1, 2, 3 or 5 in ``mode`` and add its rows."""
    p = bench.profile
    label = f"{mode.prefix}{scenario}"
    settings = paced_settings(scenario, mode, p)
    limit = settings["limit"]
    users = write_uids(bench.tmp / f"users-{label}-{mode.tag}.csv", limit * (p.windows + 2),
                       f"s{scenario}")  # fmt: skip
    bench.log(f"scenario {label} ({mode.name}): {p.windows} windows of {limit}/{p.window} s")
    with fake_server(bench, label, settings) as fake:
        audit = bench.tmp / f"audit-{label}-{mode.tag}.jsonl"
        process, log = start_client(bench, label, fake, users, audit)
        start = wait_for_timeline(fake, process, log)
        sleep_until(start + p.windows * p.window + 1, fake)
        early = process.poll()
        stop_process(process)
        time.sleep(settings.get("latency", 0.0) + 0.5)
        stats = fake.stats()
    run = Paced(stats["timeline"], limit, p.window, p.windows * p.window, stats["live_sent"],
                stats["live_refused"])  # fmt: skip
    whole = run.whole()
    note = "" if early is None else f"; bulkdelete ENDED EARLY (exit {early}): {tail(log)}"
    ours = [run.per_window("our_ok", w) for w in whole]
    live = [run.per_window("live_ok", w) for w in whole]
    bench.series.append(Series(scenario, mode, run.timeline, limit, p.window, whole))
    if not whole:
        bench.row(label, mode.name, "(no whole window)", "-", "-", False, f"timeline {note}")
        return
    shape = f"whole windows {whole}: ours {ours}, live {live}{note}"
    if scenario in ("1", "5"):
        used = min(ours) / limit
        bench.row(label, mode.name, "ours / limit, worst whole window", f"{used:.3f}",
                  ">= 0.97", used >= 0.97, shape)  # fmt: skip
    if scenario == "1":
        ok, refused = (
            window_sums(run.timeline, "our_ok", 0, 1 << 20),
            window_sums(run.timeline, "our_429", 0, 1 << 20),
        )
        share = refused / max(1, ok + refused)
        bench.row(label, mode.name, "429s / our requests", f"{share:.2%}", "<= 0.5%",
                  share <= 0.005, f"{refused} of {ok + refused} over the whole run")  # fmt: skip
    if scenario in ("2", "3"):
        target = 0.8 if scenario == "2" else 0.7
        taken = min(o / (limit - lv) for o, lv in zip(ours, live, strict=True))
        bench.row(label, mode.name, "ours / (limit - live), worst whole window",
                  f"{taken:.3f}", f">= {target}", taken >= target, shape)  # fmt: skip
        bench.row(label, mode.name, "live requests refused", str(run.live_refused), "0",
                  run.live_refused == 0, f"of {run.live_sent} sent")  # fmt: skip
    if scenario in ("1", "2", "3"):
        achieved = sum(ours) / (len(whole) * p.window)
        rates = progress_rates(log, after=60.0)
        if rates:
            off = max(abs(rate - achieved) / achieved for rate in rates)
            bench.row(label, mode.name, "progress rate (and ETA) off, after 1 min",
                      f"{off:.1%}", "info", None,
                      f"{len(rates)} events, rate {min(rates):.1f}-{max(rates):.1f}/s vs "
                      f"{achieved:.1f}/s over the whole windows")  # fmt: skip


def run_restart(bench: Bench, mode: Mode) -> None:
    """Scenario 4 in ``mode``: SIGTERM 30 s in, ``--resume`` at once; add its rows."""
    p = bench.profile
    label = f"{mode.prefix}4"
    settings = paced_settings("4", mode, p)
    limit = settings["limit"]
    users = write_uids(bench.tmp / f"users-{label}-{mode.tag}.csv", limit * (p.windows + 2),
                       "r")  # fmt: skip
    audit = bench.tmp / f"audit-{label}-{mode.tag}.jsonl"
    stop_after = RESTART_AFTER * p.window / 60
    with fake_server(bench, label, settings) as fake:
        if not mode.settings.get("window_from_first_request"):
            # Start 45 s into a minute, so that the restart comes 15 s into a whole window.
            phase = RESTART_PHASE * p.window / 60
            sleep_until(server_now(fake) + (phase - server_now(fake)) % p.window, fake)
        bench.log(f"scenario {label} ({mode.name}): first run")
        first, log = start_client(bench, label, fake, users, audit)
        started = time.monotonic()
        start = wait_for_timeline(fake, first, log)
        time.sleep(max(0.0, started + stop_after - time.monotonic()))
        stopped_at = time.monotonic()
        code = stop_process(first)
        resumed, log = start_client(bench, label, fake, users, audit, "--resume")
        restarted = time.monotonic() - stopped_at
        bench.log(f"scenario {label}: first run exit {code}, restarted after {restarted:.2f} s")
        sleep_until(start + p.windows * p.window + 1, fake)
        early = resumed.poll()
        stop_process(resumed)
        time.sleep(0.5)
        stats = fake.stats()
    run = Paced(stats["timeline"], limit, p.window, p.windows * p.window, stats["live_sent"],
                stats["live_refused"])  # fmt: skip
    whole = run.whole()
    bench.series.append(Series("4", mode, run.timeline, limit, p.window, whole))
    note = "" if early is None else f"; bulkdelete ENDED EARLY (exit {early}): {tail(log)}"
    if not whole:
        bench.row(label, mode.name, "(no whole window)", "-", "-", False, note)
        return
    used = [run.used(w) for w in whole]
    worst = min(used) / limit
    bench.row(label, mode.name, "used / limit, worst whole window", f"{worst:.3f}", ">= 0.95",
              worst >= 0.95,
              f"whole windows {whole}: used {used}; first run exit {code}, the second started "
              f"{restarted:.2f} s after the SIGTERM{note}")  # fmt: skip
    idle = []
    for w in whole:
        spent = 0
        for second in range(w * p.window, (w + 1) * p.window):
            row = run.timeline.get(second, {})
            if not row.get("our_ok") and spent < (1 - ROOM) * limit:
                idle.append(second)
            spent += row.get("our_ok", 0) + row.get("live_ok", 0)
    where = f"seconds {idle[:10]}" if idle else "none in the whole windows"
    bench.row(label, mode.name, "seconds idle with budget left", str(len(idle)), "0", not idle,
              where)  # fmt: skip


def paced_mode(bench: Bench, mode: Mode, scenarios: str) -> None:
    """Run the paced scenarios of ``mode`` at the same time."""
    jobs: list[tuple[str, Callable[[], None]]] = [
        (f"{mode.prefix}{s}", functools.partial(run_paced, bench, s, mode))
        for s in "1235"
        if s in scenarios
    ]
    if "4" in scenarios:
        jobs.append((f"{mode.prefix}4", functools.partial(run_restart, bench, mode)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        for future in [pool.submit(guarded, bench, label, job) for label, job in jobs]:
            future.result()


# ---------------------------------------------------------------------------------------------
# Scenario 7: throughput on loopback


def steady_rate(timeline: dict[int, dict[str, int]], wall: float) -> tuple[float, str]:
    """Return requests per second over the whole seconds between the first and last ones.

    Falls back to all requests / the client's wall time when there are too few whole seconds.
    """
    busy = [s for s, row in timeline.items() if row["our_ok"] + row["our_429"]]
    total = sum(row["our_ok"] for row in timeline.values())
    if len(busy) >= 4:
        inner = range(min(busy) + 1, max(busy))
        return window_sums(timeline, "our_ok", inner.start, inner.stop) / len(inner), (
            f"{len(inner)} whole seconds"
        )
    return total / wall, f"{total} over {wall:.1f} s wall"


def run_contender(
    bench: Bench, name: str, count: int, start: Callable[[Fake, Path], subprocess.Popen[Any]]
) -> tuple[float, str]:
    """Run one contender against a fresh unlimited server; return its rate and how it was taken.

    Also reported: the client's CPU time per delete (user + system, its children and its start-up
    included), which other load on the machine disturbs far less than the rate.
    """
    users = write_uids(bench.tmp / f"users-7-{name}.txt", count, name, header=False)
    with fake_server(bench, "7", {"all_exist": True}, cpu=SERVER_CPU_7) as fake:
        began = time.monotonic()
        # Scenario 4 runs alone, so the only child reaped during the wait is the contender.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = start(fake, users)
        code = process.wait(timeout=1800)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - began
        stats = fake.stats()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    deleted = len(stats["applied"])
    if code != 0 or deleted != count:
        statuses = stats["status_counts"]
        raise BenchError(f"{name}: exit {code}, {deleted} deleted of {count}, answers {statuses}")
    rate, how = steady_rate(stats["timeline"], wall)
    cpu_note = f"client CPU {cpu / count * 1e6:.0f} us/delete"
    bench.log(f"scenario 7: {name} {rate:.0f}/s ({how}; {cpu_note})")
    return rate, f"{rate:.0f}/s ({count} UIDs, {how}; {cpu_note})"


def scenario_throughput(bench: Bench) -> float:
    """Scenario 7; return bulkdelete's rate (to size scenario 8)."""
    p = bench.profile
    logs = bench.tmp

    def bulkdelete(fake: Fake, users: Path) -> subprocess.Popen[Any]:
        args = tool_args(bench, "7", fake.base_url, users)
        bench.note_command("7", args, "COMETCHAT_API_KEY=... ")
        return bench.popen(args, logs / "client-7-bulkdelete.log", cpu=CLIENT_CPU_7)

    def loop(kind: str, *extra: str) -> Callable[[Fake, Path], subprocess.Popen[Any]]:
        def start(fake: Fake, users: Path) -> subprocess.Popen[Any]:
            args = [
                sys.executable,
                str(BENCH / "_loops.py"),
                kind,
                fake.base_url,
                str(users),
                *extra,
            ]
            bench.note_command("7", args, "COMETCHAT_API_KEY=... ")
            return bench.popen(args, logs / f"client-7-{kind}.log", cpu=CLIENT_CPU_7)

        return start

    def curl(fake: Fake, users: Path) -> subprocess.Popen[Any]:
        urls = bench.tmp / "urls-7-curl.txt"
        uids = users.read_text(encoding="utf-8").split()
        urls.write_text("".join(f"{fake.base_url}/users/{uid}\n" for uid in uids), "utf-8")
        args = [
            "xargs", "-P", str(CONCURRENCY_7), "-n", "50", "curl", "-s", "-o", "/dev/null",
            "-X", "DELETE", "-H", f"apikey: {API_KEY}", "-H", "accept: application/json",
            "-H", "content-type: application/json", "-d", '{"permanent":false}',
        ]  # fmt: skip
        bench.note_command("7", args, suffix=f" < {urls}")
        with urls.open("rb") as stdin:
            # Only the first URL of each curl goes to -o; the others' bodies go to stdout.
            return bench.popen(
                args,
                logs / "client-7-curl.log",
                cpu=CLIENT_CPU_7,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
            )

    def floor(fake: Fake, users: Path) -> subprocess.Popen[Any]:
        audit = bench.tmp / f"audit-7-floor-{time.monotonic_ns()}.jsonl"
        return loop("floor", str(CONCURRENCY_7), str(audit))(fake, users)

    bench.log("scenario 7: throughput against an unlimited server")
    # Alternate them and keep each one's best round: other load on the machine only slows.
    best: dict[str, tuple[float, str]] = {}
    contenders = (
        ("bulkdelete", bulkdelete),
        ("aiohttp", loop("aiohttp", str(CONCURRENCY_7))),
        ("floor", floor),
    )
    for _ in range(p.s7_rounds):
        for name, start in contenders:
            rate, how = run_contender(bench, name, p.s7_uids, start)
            if rate > best.get(name, (0.0, ""))[0]:
                best[name] = (rate, how)
    (ours, ours_how), (bare, bare_how) = best["bulkdelete"], best["aiohttp"]
    least, least_how = best["floor"]
    bench.row(
        "7",
        "-",
        "bulkdelete / aiohttp loop",
        f"{ours / bare:.3f}",
        "info",
        None,
        f"best of {p.s7_rounds} alternating rounds{PINNING_7}: bulkdelete {ours_how}; "
        f"bare aiohttp, "
        f"{CONCURRENCY_7} tasks: {bare_how}",
    )
    bench.row(
        "7",
        "-",
        "evidence floor / aiohttp loop",
        f"{least / bare:.3f}",
        "info",
        None,
        "the aiohttp loop plus only validation and the two chained audit lines per UID "
        f"(bench/_loops.py floor), best of the same rounds: {least_how}",
    )
    bench.row(
        "7",
        "-",
        "bulkdelete / evidence floor",
        f"{ours / least:.3f}",
        "info",
        None,
        "what pacing, retries, answer parsing and run bookkeeping cost on top of the floor",
    )
    seq, seq_how = run_contender(bench, "requests", p.s7_requests_uids, loop("requests"))
    bench.row(
        "7",
        "-",
        "bulkdelete / requests loop",
        f"{ours / seq:.2f}",
        "info",
        None,
        f"sequential requests.Session().delete: {seq_how}",
    )
    if shutil.which("curl") and shutil.which("xargs"):
        xargs, xargs_how = run_contender(bench, "curl", p.s7_curl_uids, curl)
        bench.row(
            "7",
            "-",
            "bulkdelete / xargs -P curl",
            f"{ours / xargs:.2f}",
            "info",
            None,
            f"xargs -P {CONCURRENCY_7} -n 50 curl: {xargs_how}",
        )
    else:
        bench.row("7", "-", "bulkdelete / xargs -P curl", "N/A", "info", None, "curl not installed")
    return ours


# ---------------------------------------------------------------------------------------------
# Scenario 8: memory


def peak_rss(bench: Bench, args: Sequence[str], log: Path) -> tuple[int, int]:
    """Run ``args`` to the end; return (exit code, peak RSS in bytes).

    ``/usr/bin/time -v`` when present, else a Python parent reading ``RUSAGE_CHILDREN`` (the same
    figure: the child's ``ru_maxrss``).
    """
    if Path("/usr/bin/time").exists():
        wrapped = ["/usr/bin/time", "-v", *args]
    else:
        probe = (
            "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "print('Maximum resident set size (kbytes):', "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)"
        )
        wrapped = [sys.executable, "-c", probe, *args]
    process = bench.popen(wrapped, log)
    code = process.wait(timeout=3600)
    found = re.findall(r"Maximum resident set size \(kbytes\): (\d+)", log.read_text("utf-8"))
    if not found:
        raise BenchError(f"no peak RSS in {log}: {tail(log)}")
    match = re.search(r"Command exited with non-zero status (\d+)", log.read_text("utf-8"))
    return (int(match.group(1)) if match else code), int(found[-1]) * 1024


def python_set_bytes_per_row(rows: int) -> float:
    """Return what a plain Python ``set`` of ``rows`` such UIDs holds per row (for reference)."""
    probe = (
        "import sys; n = int(sys.argv[1]); "
        "seen = {f's-{i:07d}'.lower() for i in range(n)}; "
        "print((sys.getsizeof(seen) + sum(map(sys.getsizeof, seen))) / n)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(rows)], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def scenario_memory(bench: Bench, tool_rate: float) -> None:
    """Scenario 8: dry-run peak RSS, and the real run's growth with input size."""
    p = bench.profile
    big = p.s8_big_rows
    if p.name == "full" and big / tool_rate > REAL_RUN_BUDGET:
        big = p.s8_small_rows * 3
        bench.log(f"scenario 8: {p.s8_big_rows} rows would take too long; using {big}")
    mb = 1024 * 1024
    sizes = sorted({p.s8_dry_rows, p.s8_small_rows, big})
    files = {n: write_uids(bench.tmp / f"users-8-{n}.csv", n, "s") for n in sizes}
    dry: dict[int, int] = {}
    for n in sizes:
        args = tool_args(bench, "8", "http://127.0.0.1:9/v3", files[n], "--dry-run")
        bench.note_command("8", ["/usr/bin/time", "-v", *args], "COMETCHAT_API_KEY=... ")
        bench.log(f"scenario 8: dry run, {n} rows")
        log = bench.tmp / f"time-8-dry-{n}.log"
        code, dry[n] = peak_rss(bench, args, log)
        if code != 0:
            raise BenchError(f"dry run of {n} rows exited {code}: {tail(log)}")
    bench.row(
        "8",
        "-",
        f"dry-run peak RSS, {p.s8_dry_rows:,} rows",
        f"{dry[p.s8_dry_rows] / mb:.1f} MB",
        "<= 60 MB",
        dry[p.s8_dry_rows] <= 60 * mb,
        "; ".join(f"{n:,} rows: {dry[n] / mb:.1f} MB" for n in sorted(dry)),
    )
    real: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for n in (p.s8_small_rows, big):
        with fake_server(bench, "8", {"all_exist": True}) as fake:
            args = tool_args(bench, "8", fake.base_url, files[n])
            bench.note_command("8", ["/usr/bin/time", "-v", *args], "COMETCHAT_API_KEY=... ")
            bench.log(f"scenario 8: real run, {n} rows")
            began = time.monotonic()
            log = bench.tmp / f"time-8-real-{n}.log"
            code, real[n] = peak_rss(bench, args, log)
            seconds[n] = time.monotonic() - began
        if code != 0:
            raise BenchError(f"real run of {n} rows exited {code}: {tail(log)}")
    small = p.s8_small_rows
    extra = big - small
    real_slope = (real[big] - real[small]) / extra
    dry_slope = (dry[big] - dry[small]) / extra
    excess = real_slope - dry_slope
    reference = python_set_bytes_per_row(big)
    bench.row(
        "8",
        "-",
        "real-run growth beyond dry run",
        f"{excess:+.1f} B/row",
        f"<= {EXCESS_ROW_BYTES:.0f} B/row",
        excess <= EXCESS_ROW_BYTES,
        f"real run peak {real[small] / mb:.1f} MB at {small:,} rows ({seconds[small]:.0f} s), "
        f"{real[big] / mb:.1f} MB at {big:,} ({seconds[big]:.0f} s): {real_slope:.1f} B/row; "
        f"dry run {dry_slope:.1f} B/row over the same sizes (its duplicate set and the like); "
        f"a plain Python set of these UIDs costs {reference:.0f} B/row",
    )


# ---------------------------------------------------------------------------------------------
# Output


def table(rows: Sequence[Row]) -> str:
    head = ("scenario", "mode", "figure", "measured", "target", "result", "details")
    cells = [
        head,
        *[(r.scenario, r.mode, r.figure, r.measured, r.target, r.verdict, r.details) for r in rows],
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    lines = []
    for number, cell in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cell[:6], widths, strict=True)) + "  " + cell[6]
        )
        if number == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


TITLES = {
    "1": "1: no other traffic",
    "2": "2: live traffic 15/s",
    "3": "3: bursty live traffic",
    "4": "4: SIGTERM 30 s in, --resume at once",
    "5": "5: 200 ms answers, 10,000/min",
}


def column(timeline: dict[int, dict[str, int]], key: str, end: int) -> list[int]:
    """Return ``key``'s count for each second from 0 to ``end`` (exclusive)."""
    return [timeline.get(second, {}).get(key, 0) for second in range(end)]


def chart(series: Sequence[Series], path: Path, quick: bool) -> None:
    """Draw requests per second for scenarios 1-5: documented (old spelling) and 6.x side by side.

    Under each second's bars, a line shows how much of its window was used by then.
    """
    shown = [m for m in MODES if m.name != MODES[1].name]
    grid = {(s.scenario, s.mode.name): s for s in series if s.mode in shown}
    if not grid:
        return
    import matplotlib as mpl  # noqa: PLC0415 - a dev-only dependency, loaded when drawing

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    scenarios = sorted({scenario for scenario, _ in grid})
    fig, axes = plt.subplots(
        len(scenarios), len(shown), figsize=(9 * len(shown), 3.0 * len(scenarios)), squeeze=False
    )
    for row, scenario in enumerate(scenarios):
        for col, mode in enumerate(shown):
            ax = axes[row, col]
            s = grid.get((scenario, mode.name))
            title = f"{mode.prefix}{TITLES[scenario]} ({mode.name})"
            if s is None:
                ax.set_title(f"{title}: not run")
                continue
            draw(ax, s, title)
    for ax in axes[-1, :]:
        ax.set_xlabel("seconds of the server clock since the first window began")
    if quick:
        fig.suptitle("QUICK MODE (shortened windows): not the benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw(ax: Any, s: Series, title: str) -> None:
    end = max(s.timeline, default=0) + 1
    xs = list(range(end))
    live, ours, refused, live_refused = (
        column(s.timeline, key, end) for key in ("live_ok", "our_ok", "our_429", "live_refused")
    )
    bottom = [0] * end
    for values, colour, label in (
        (live, "#bbbbbb", "live (admitted)"),
        (ours, "#1f77b4", "bulkdelete (admitted)"),
        (refused, "#d62728", "bulkdelete 429"),
        (live_refused, "#ff7f0e", "live refused"),
    ):
        if any(values):
            ax.bar(xs, values, width=1.0, align="edge", bottom=bottom, color=colour, label=label)
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    used_share, spent = [], 0
    for second in xs:
        if second % s.window == 0:
            spent = 0
        spent += live[second] + ours[second]
        used_share.append(spent / s.limit)
    twin = ax.twinx()
    twin.plot([x + 1 for x in xs], used_share, color="black", linewidth=0.8, label="window used")
    twin.axhline(1.0, color="black", linestyle="--", linewidth=0.6)
    twin.set_ylim(0, 1.15)
    twin.set_ylabel("share of the window used")
    for boundary in range(s.window, end, s.window):
        ax.axvline(boundary, color="grey", linewidth=0.5)
    for window in s.whole:
        ax.axvspan(window * s.window, (window + 1) * s.window, color="yellow", alpha=0.2, zorder=0)
    ax.set_title(f"{title}; shaded: whole windows measured", fontsize=9)
    ax.set_xlim(0, end)
    ax.set_ylim(0, max(bottom, default=1) * 1.2 or 1)
    ax.set_ylabel("requests / s")
    ax.legend(loc="upper left", fontsize=7)


def machine_info(bench: Bench) -> list[tuple[str, str]]:
    def out(*args: str) -> str:
        try:
            return subprocess.run(
                args, capture_output=True, text=True, check=False, cwd=ROOT
            ).stdout.strip()
        except OSError:
            return "?"

    # What this run writes itself is not a change to what it ran.
    written = (":!BENCHMARKS.md", ":!bench/throughput.png")
    dirty = (
        " (uncommitted changes)" if out("git", "status", "--porcelain", "--", ".", *written) else ""
    )
    return [
        ("date (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")),
        ("nproc", out("nproc")),
        ("python", platform.python_version()),
        ("platform", platform.platform()),
        ("bulkdelete", out(*CLI, "--version").removeprefix("bulkdelete, ")),
        ("commit", out("git", "rev-parse", "--short", "HEAD") + dirty),
        (
            "1-min load average during the run",
            " / ".join(f"{load:.1f}" for load in bench.loads)
            + " (sampled at each scenario; above nproc, other work shared the cores)",
        ),
    ]


def markdown(bench: Bench, command: str, elapsed: float) -> str:
    p = bench.profile
    lines = ["# Benchmarks", ""]
    if p.name == "quick":
        lines += [
            "> **QUICK MODE** (`--quick`): shortened windows and inputs, for checking the",
            "> harness only. These figures are not the benchmark.",
            "",
        ]
    lines += [
        f"Written by `{command}` in {elapsed / 60:.1f} min. Every figure is a ratio measured in "
        "this run, side by side; rates come from the fake server's per-second timeline. See the "
        "docstring of `bench/pacing.py` for what each figure means.",
        "",
        "| scenario | mode | figure | measured | target | result | details |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in bench.rows:
        lines.append(
            f"| {r.scenario} | {r.mode} | {r.figure} | {r.measured} | {r.target} | {r.verdict} | "
            f"{r.details.replace('|', '/')} |"
        )
    lines += [
        "",
        "![requests per second and share of each window used, scenarios 1-5 and 6.1-6.5]"
        "(bench/throughput.png)",
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in machine_info(bench)],
        "",
        "## Commands",
        "",
        f"Mode `{p.name}`: {p.limit} requests per {p.window} s window (scenario 5: "
        f"{SLOW['limit']}), each run stopped {p.windows} windows after the first one began; the "
        "five paced scenarios of one fake mode ran at the same time, the modes, 7 and 8 one "
        "after another. `$TMP` is the bench's temporary directory.",
        "",
        "```sh",
    ]
    for scenario, text in sorted(bench.commands, key=lambda command: command[0]):
        lines.append(f"# {scenario}\n{text}")
    lines += ["```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def guarded(bench: Bench, scenario: str, run: Callable[[], Any]) -> Any:
    """Run one scenario; a BenchError becomes a FAIL row instead of stopping the others."""
    bench.sample_load()
    try:
        return run()
    except (BenchError, subprocess.SubprocessError, OSError) as error:
        bench.log(f"scenario {scenario} failed: {error}")
        bench.row(scenario, "-", "(scenario failed)", "-", "-", False, str(error)[:300])
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shortened windows and inputs")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--only",
        default=EVERY,
        help="scenarios to run, e.g. 46: 1-5 in the documented modes, 6 for all five in the old "
        "mode, 7 and 8; a partial run writes no BENCHMARKS.md or chart",
    )
    options = parser.parse_args(argv)
    if not options.only or set(options.only) - set(EVERY):
        parser.error(f"--only takes scenario numbers from {EVERY}")
    partial = set(options.only) != set(EVERY)
    profile = QUICK if options.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="bench-pacing-"))
    bench = Bench(profile, tmp)
    command = ".venv/bin/python bench/pacing.py" + (" --quick" if options.quick else "")
    if options.quick:
        bench.log("QUICK MODE: shortened windows and inputs; figures are for the harness only")
    began = time.monotonic()
    try:
        for mode in MODES:
            scenarios = "12345" if mode.prefix and "6" in options.only else ""
            scenarios = scenarios or ("" if mode.prefix else options.only)
            if set(scenarios) & set("12345"):
                paced_mode(bench, mode, scenarios)
        rate = None
        if "7" in options.only:
            rate = guarded(bench, "7", lambda: scenario_throughput(bench))
        if "8" in options.only:
            guarded(bench, "8", lambda: scenario_memory(bench, rate or 1500.0))
    finally:
        bench.cleanup()
    bench.sample_load()
    elapsed = time.monotonic() - began
    bench.rows.sort(key=lambda r: (float(r.scenario), MODE_ORDER.get(r.mode, len(MODES))))
    title = "QUICK MODE - not the benchmark" if options.quick else "full run"
    loads = " / ".join(f"{load:.1f}" for load in bench.loads)
    print(f"\nbench/pacing.py: {title}, {elapsed / 60:.1f} min, load average {loads}\n")
    print(table(bench.rows))
    if partial:
        print("\npartial run (--only): BENCHMARKS.md and bench/throughput.png left as they were")
    else:
        chart(bench.series, BENCH / "throughput.png", options.quick)
        page = ROOT / "BENCHMARKS.md"
        kept = page.read_text(encoding="utf-8").partition(BULK_SECTION)  # bench/bulk.py's figures
        text = markdown(bench, command, elapsed) + (kept[1] + kept[2] if kept[1] else "")
        page.write_text(text, encoding="utf-8")
        print("\nwrote BENCHMARKS.md and bench/throughput.png")
    if options.keep_dir:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(r.ok is False for r in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
