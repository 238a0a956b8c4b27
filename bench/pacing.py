"""Pacing benchmarks: does bulkdelete pace itself to the limit, leave room for production, keep up?

Five figures, each a ratio measured side by side in one run, against ``bulkdelete fake-server``
processes on 127.0.0.1 (each server in a process of its own, never the client's event loop):

1  zero-config pacing against a 3,000/min fixed window: our admitted requests per second over the
   complete windows after the first / (limit / window); and 429s / our requests over the whole run.
2  the same with simulated live traffic taking 30 % of the budget: our rate / ((limit - live) /
   window) over the same windows; and the live requests the server refused.
3  200 ms answers, 10,000/min allowed, CLI defaults only: achieved / (10,000 / 60) over ~40 s.
4  an unlimited server: bulkdelete's deletes per second / a bare aiohttp loop at the same
   concurrency, / a sequential ``requests`` loop, / ``xargs -P`` with curl. For information, the
   "evidence floor" (``bench/_loops.py floor``: the bare loop plus only validation and the two
   chained audit lines a UID needs) / the bare loop, and bulkdelete / that floor. Each client runs
   on one CPU and the server on another.
5  peak RSS for a 1,000,000-row input with ``--dry-run``; and how a real run's peak RSS grows with
   the input (bytes per extra row), set against the dry run's growth (the duplicate set).

Rates come from the fake server's per-second timeline (``GET /_fake/stats``), not from the client.
Scenarios 1 to 3 run at the same time (each with its own server and client: they are light);
4 and 5 run alone. Targets: 1 >= 0.97 with <= 0.5 % 429s; 2 no live refusals and >= 0.8;
3 >= 0.97; 4 >= 0.9 of the aiohttp loop; 5 dry run <= 60 MB, real run flat beyond the duplicate
set (growth per row at most the dry run's + 8 B).

Run from the repository root (15-20 minutes; ``--quick`` about 4, for checking the harness only):

    .venv/bin/python bench/pacing.py [--quick] [--keep-dir]

It prints a table and writes ``BENCHMARKS.md`` and ``bench/throughput.png``. Needs matplotlib and
requests (dev dependencies); curl and ``/usr/bin/time`` are used when present. Exit status 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
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

from bulkdelete.fakeserver import fetch_stats

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
API_KEY = "bench-pacing-3f9a1c"  # a fixed test key: the fake servers accept only this one
CLI = (sys.executable, "-m", "bulkdelete")

# bulkdelete's flags per scenario, on top of --base-url/--audit/--yes/--log-level. Pacing is left
# to the defaults on purpose (1-3): adding a flag to a scenario is one edit here.
TOOL_FLAGS: dict[str, tuple[str, ...]] = {
    "1": (),
    "2": (),
    "3": (),
    "4": ("--rate", "1000000", "--concurrency", "32"),
    "5": ("--rate", "1000000"),
}
CONCURRENCY_4 = 32  # the aiohttp loop and xargs -P use the same number as TOOL_FLAGS["4"]
# Scenario 4 runs each contender on one CPU and the server on another (when there are two), so
# neither steals the other's core and rounds differ less.
_CPUS = sorted(os.sched_getaffinity(0))
CLIENT_CPU_4, SERVER_CPU_4 = (_CPUS[0], _CPUS[-1]) if len(_CPUS) >= 2 else (None, None)
PINNING_4 = (
    "" if CLIENT_CPU_4 is None else f" (clients on CPU {CLIENT_CPU_4}, server on {SERVER_CPU_4})"
)
LIVE_SHARE = 0.30  # scenario 2: the live app's share of the budget
EXCESS_ROW_BYTES = 8.0  # scenario 5: allowed real-run growth per row beyond the dry run's


@dataclass(frozen=True)
class Profile:
    """Sizes and durations of one mode."""

    name: str
    limit: int  # scenarios 1-2: requests per window
    window: int  # seconds, whole so that windows are whole seconds of the timeline
    measured_windows: int  # complete windows measured after the first
    s3_seconds: int
    s4_rounds: int  # bulkdelete and the aiohttp loop run alternately this many times each
    s4_uids: int  # bulkdelete and the aiohttp loop
    s4_requests_uids: int  # the sequential requests loop
    s4_curl_uids: int  # xargs curl
    s5_dry_rows: int
    s5_small_rows: int
    s5_big_rows: int  # may be lowered at run time when a real run would take too long


# Scenario 4's inputs are sized for about 5 s or more each in the full mode.
FULL = Profile("full", 3000, 60, 2, 40, 5, 30_000, 3_000, 10_000, 1_000_000, 100_000, 1_000_000)
QUICK = Profile("quick", 300, 6, 2, 10, 1, 4_000, 1_000, 2_000, 200_000, 20_000, 60_000)
S3_LIMIT, S3_WINDOW, S3_LATENCY = 10_000, 60, 0.2
REAL_RUN_BUDGET = 900.0  # seconds the big real run of scenario 5 may take before it is shrunk


class BenchError(Exception):
    """A scenario could not go on (a process did not start, a wait timed out)."""


@dataclass
class Row:
    """One row of the result table; ``ok`` is None for a figure reported for information."""

    scenario: str
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

    title: str
    timeline: dict[int, dict[str, int]]
    limit_rate: float
    window: int
    measured: tuple[int, int]  # [from, to) seconds
    free_rate: float | None = None


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
        text = re.sub(r"audit-[\w-]+\.jsonl", "audit.jsonl", text)
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


def run_paced(
    bench: Bench, scenario: str, fake: Fake, users: Path, seconds: float
) -> tuple[int | None, int]:
    """Run bulkdelete until ``seconds`` of the server's timeline have passed, then SIGTERM it.

    Return (the exit code if it ended by itself before the deadline, else None; the final code).
    The timeline starts at the first counted request (the server's start when live traffic comes
    first); the deadline is counted from the first poll that sees it begun.
    """
    args = tool_args(bench, scenario, fake.base_url, users)
    bench.note_command(scenario, args, "COMETCHAT_API_KEY=... ")
    log = bench.tmp / f"client-{scenario}.log"
    process = bench.popen(args, log)
    began = time.monotonic()
    while not fake.stats()["timeline"]:
        if process.poll() is not None or time.monotonic() - began > 30:
            raise BenchError(f"scenario {scenario}: no request reached the server: {tail(log)}")
        time.sleep(0.2)
    # The timeline began at or before now: the deadline may be late by a poll, never early.
    deadline = time.monotonic() + seconds + 1.0
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    early = process.poll()
    code = stop_process(process)
    if early is not None:
        bench.log(f"scenario {scenario}: bulkdelete ended early (exit {early}): {tail(log)}")
    return early, code


def window_sums(timeline: dict[int, dict[str, int]], key: str, start: int, end: int) -> int:
    return sum(timeline.get(second, {}).get(key, 0) for second in range(start, end))


def per_window(timeline: dict[int, dict[str, int]], key: str, window: int, count: int) -> list[int]:
    return [window_sums(timeline, key, w * window, (w + 1) * window) for w in range(count)]


def peak_second(timeline: dict[int, dict[str, int]], key: str = "our_ok") -> tuple[int, int]:
    """Return (second, count) of the busiest second."""
    if not timeline:
        return (0, 0)
    second = max(timeline, key=lambda s: timeline[s].get(key, 0))
    return second, timeline[second].get(key, 0)


def early_note(early: int | None) -> str:
    return "" if early is None else f"; bulkdelete ENDED EARLY (exit {early})"


# ---------------------------------------------------------------------------------------------
# Scenarios 1-3: pacing against a limit


def scenario_fixed_window(bench: Bench, *, live: bool) -> None:
    """Scenario 1 (no live traffic) or 2 (live traffic at LIVE_SHARE of the budget)."""
    p = bench.profile
    scenario = "2" if live else "1"
    live_rate = LIVE_SHARE * p.limit / p.window if live else 0.0
    settings: dict[str, Any] = {"all_exist": True, "limit": p.limit, "window": p.window}
    if live:
        settings["live_rate"] = live_rate
    span = (1 + p.measured_windows) * p.window
    # More UIDs than the whole limit of every window could admit: the run never runs dry.
    users = write_uids(bench.tmp / f"users-{scenario}.csv", p.limit * (2 + p.measured_windows), "s")
    bench.log(f"scenario {scenario}: {span} s against {p.limit}/{p.window} s, live {live_rate}/s")
    with fake_server(bench, scenario, settings) as fake:
        early, _ = run_paced(bench, scenario, fake, users, span)
        time.sleep(0.5)
        stats = fake.stats()
    timeline = stats["timeline"]
    measured = (p.window, span)
    ok = window_sums(timeline, "our_ok", *measured)
    seconds = span - p.window
    windows = per_window(timeline, "our_ok", p.window, 1 + p.measured_windows)
    refused = per_window(timeline, "our_429", p.window, 1 + p.measured_windows)
    total_ok = sum(row["our_ok"] for row in timeline.values())
    total_429 = sum(row["our_429"] for row in timeline.values())
    peak_at, peak = peak_second(timeline)
    shape = (
        f"admitted per window {windows}, 429s per window {refused}; busiest second {peak_at}: "
        f"{peak}/s"
    )
    if not live:
        allowed = p.limit / p.window
        ratio = ok / seconds / allowed
        bench.row(
            "1",
            "achieved / allowed",
            f"{ratio:.3f}",
            ">= 0.97",
            ratio >= 0.97,
            f"{ok / seconds:.1f}/s over windows 1-{p.measured_windows} vs {allowed:.1f}/s; "
            f"{shape}{early_note(early)}",
        )
        share = total_429 / max(1, total_ok + total_429)
        bench.row(
            "1",
            "429s / requests",
            f"{share:.2%}",
            "<= 0.5%",
            share <= 0.005,
            f"{total_429} of {total_ok + total_429} requests over the whole run",
        )
        bench.series.append(
            Series(
                "1: 3,000/min window" if p.name == "full" else f"1: {p.limit}/{p.window}s window",
                timeline,
                allowed,
                p.window,
                measured,
            )
        )
        return
    free = (p.limit - live_rate * p.window) / p.window
    ratio = ok / seconds / free
    live_ok = window_sums(timeline, "live_ok", *measured)
    bench.row(
        "2",
        "our rate / free budget",
        f"{ratio:.3f}",
        ">= 0.8",
        ratio >= 0.8,
        f"{ok / seconds:.1f}/s vs (limit - live) {free:.1f}/s; live admitted {live_ok} in the "
        f"measured windows; ours: {shape}{early_note(early)}",
    )
    bench.row(
        "2",
        "live refusals",
        str(stats["live_refused"]),
        "0",
        stats["live_refused"] == 0,
        f"of {stats['live_sent']} live requests at {live_rate:.1f}/s "
        f"({LIVE_SHARE:.0%} of the budget); our 429s {total_429}",
    )
    bench.series.append(
        Series(
            "2: same, live traffic 30 %",
            timeline,
            p.limit / p.window,
            p.window,
            measured,
            free_rate=free,
        )
    )


def scenario_latency(bench: Bench) -> None:
    """Scenario 3: 200 ms answers, 10,000/min allowed, defaults only."""
    p = bench.profile
    settings = {"all_exist": True, "limit": S3_LIMIT, "window": S3_WINDOW, "latency": S3_LATENCY}
    users = write_uids(bench.tmp / "users-3.csv", S3_LIMIT * 2, "l")
    bench.log(f"scenario 3: {p.s3_seconds} s at {S3_LATENCY * 1000:.0f} ms per answer")
    measured = (1, 1 + p.s3_seconds)
    with fake_server(bench, "3", settings) as fake:
        early, _ = run_paced(bench, "3", fake, users, measured[1])
        time.sleep(S3_LATENCY + 0.5)
        stats = fake.stats()
    timeline = stats["timeline"]
    allowed = S3_LIMIT / S3_WINDOW
    ok = window_sums(timeline, "our_ok", *measured)
    ratio = ok / p.s3_seconds / allowed
    peak_at, peak = peak_second(timeline)
    bench.row(
        "3",
        "achieved / allowed",
        f"{ratio:.3f}",
        ">= 0.97",
        ratio >= 0.97,
        f"{ok / p.s3_seconds:.1f}/s over seconds {measured[0]}-{measured[1] - 1} vs "
        f"{allowed:.1f}/s; busiest second {peak_at}: {peak}/s; most in flight "
        f"{stats['max_in_flight']}; 429s {stats['rejected_over_limit']}{early_note(early)}",
    )
    bench.series.append(
        Series("3: 200 ms answers, 10,000/min", timeline, allowed, S3_WINDOW, measured)
    )


# ---------------------------------------------------------------------------------------------
# Scenario 4: throughput on loopback


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
    users = write_uids(bench.tmp / f"users-4-{name}.txt", count, name, header=False)
    with fake_server(bench, "4", {"all_exist": True}, cpu=SERVER_CPU_4) as fake:
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
    bench.log(f"scenario 4: {name} {rate:.0f}/s ({how}; {cpu_note})")
    return rate, f"{rate:.0f}/s ({count} UIDs, {how}; {cpu_note})"


def scenario_throughput(bench: Bench) -> float:
    """Scenario 4; return bulkdelete's rate (to size scenario 5)."""
    p = bench.profile
    logs = bench.tmp

    def bulkdelete(fake: Fake, users: Path) -> subprocess.Popen[Any]:
        args = tool_args(bench, "4", fake.base_url, users)
        bench.note_command("4", args, "COMETCHAT_API_KEY=... ")
        return bench.popen(args, logs / "client-4-bulkdelete.log", cpu=CLIENT_CPU_4)

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
            bench.note_command("4", args, "COMETCHAT_API_KEY=... ")
            return bench.popen(args, logs / f"client-4-{kind}.log", cpu=CLIENT_CPU_4)

        return start

    def curl(fake: Fake, users: Path) -> subprocess.Popen[Any]:
        urls = bench.tmp / "urls-4-curl.txt"
        uids = users.read_text(encoding="utf-8").split()
        urls.write_text("".join(f"{fake.base_url}/users/{uid}\n" for uid in uids), "utf-8")
        args = [
            "xargs", "-P", str(CONCURRENCY_4), "-n", "50", "curl", "-s", "-o", "/dev/null",
            "-X", "DELETE", "-H", f"apikey: {API_KEY}", "-H", "accept: application/json",
            "-H", "content-type: application/json", "-d", '{"permanent":false}',
        ]  # fmt: skip
        bench.note_command("4", args, suffix=f" < {urls}")
        with urls.open("rb") as stdin:
            # Only the first URL of each curl goes to -o; the others' bodies go to stdout.
            return bench.popen(
                args,
                logs / "client-4-curl.log",
                cpu=CLIENT_CPU_4,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
            )

    def floor(fake: Fake, users: Path) -> subprocess.Popen[Any]:
        audit = bench.tmp / f"audit-4-floor-{time.monotonic_ns()}.jsonl"
        return loop("floor", str(CONCURRENCY_4), str(audit))(fake, users)

    bench.log("scenario 4: throughput against an unlimited server")
    # Alternate them and keep each one's best round: other load on the machine only slows.
    best: dict[str, tuple[float, str]] = {}
    contenders = (
        ("bulkdelete", bulkdelete),
        ("aiohttp", loop("aiohttp", str(CONCURRENCY_4))),
        ("floor", floor),
    )
    for _ in range(p.s4_rounds):
        for name, start in contenders:
            rate, how = run_contender(bench, name, p.s4_uids, start)
            if rate > best.get(name, (0.0, ""))[0]:
                best[name] = (rate, how)
    (ours, ours_how), (bare, bare_how) = best["bulkdelete"], best["aiohttp"]
    least, least_how = best["floor"]
    bench.row(
        "4",
        "bulkdelete / aiohttp loop",
        f"{ours / bare:.3f}",
        ">= 0.9",
        ours / bare >= 0.9,
        f"best of {p.s4_rounds} alternating rounds{PINNING_4}: bulkdelete {ours_how}; "
        f"bare aiohttp, "
        f"{CONCURRENCY_4} tasks: {bare_how}",
    )
    bench.row(
        "4",
        "evidence floor / aiohttp loop",
        f"{least / bare:.3f}",
        "info",
        None,
        "the aiohttp loop plus only validation and the two chained audit lines per UID "
        f"(bench/_loops.py floor), best of the same rounds: {least_how}",
    )
    bench.row(
        "4",
        "bulkdelete / evidence floor",
        f"{ours / least:.3f}",
        "info",
        None,
        "what pacing, retries, answer parsing and run bookkeeping cost on top of the floor",
    )
    seq, seq_how = run_contender(bench, "requests", p.s4_requests_uids, loop("requests"))
    bench.row(
        "4",
        "bulkdelete / requests loop",
        f"{ours / seq:.2f}",
        "info",
        None,
        f"sequential requests.Session().delete: {seq_how}",
    )
    if shutil.which("curl") and shutil.which("xargs"):
        xargs, xargs_how = run_contender(bench, "curl", p.s4_curl_uids, curl)
        bench.row(
            "4",
            "bulkdelete / xargs -P curl",
            f"{ours / xargs:.2f}",
            "info",
            None,
            f"xargs -P {CONCURRENCY_4} -n 50 curl: {xargs_how}",
        )
    else:
        bench.row("4", "bulkdelete / xargs -P curl", "N/A", "info", None, "curl not installed")
    return ours


# ---------------------------------------------------------------------------------------------
# Scenario 5: memory


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
    """Scenario 5: dry-run peak RSS, and the real run's growth with input size."""
    p = bench.profile
    big = p.s5_big_rows
    if p.name == "full" and big / tool_rate > REAL_RUN_BUDGET:
        big = p.s5_small_rows * 3
        bench.log(f"scenario 5: {p.s5_big_rows} rows would take too long; using {big}")
    mb = 1024 * 1024
    sizes = sorted({p.s5_dry_rows, p.s5_small_rows, big})
    files = {n: write_uids(bench.tmp / f"users-5-{n}.csv", n, "s") for n in sizes}
    dry: dict[int, int] = {}
    for n in sizes:
        args = tool_args(bench, "5", "http://127.0.0.1:9/v3", files[n], "--dry-run")
        bench.note_command("5", ["/usr/bin/time", "-v", *args], "COMETCHAT_API_KEY=... ")
        bench.log(f"scenario 5: dry run, {n} rows")
        log = bench.tmp / f"time-5-dry-{n}.log"
        code, dry[n] = peak_rss(bench, args, log)
        if code != 0:
            raise BenchError(f"dry run of {n} rows exited {code}: {tail(log)}")
    bench.row(
        "5",
        f"dry-run peak RSS, {p.s5_dry_rows:,} rows",
        f"{dry[p.s5_dry_rows] / mb:.1f} MB",
        "<= 60 MB",
        dry[p.s5_dry_rows] <= 60 * mb,
        "; ".join(f"{n:,} rows: {dry[n] / mb:.1f} MB" for n in sorted(dry)),
    )
    real: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for n in (p.s5_small_rows, big):
        with fake_server(bench, "5", {"all_exist": True}) as fake:
            args = tool_args(bench, "5", fake.base_url, files[n])
            bench.note_command("5", ["/usr/bin/time", "-v", *args], "COMETCHAT_API_KEY=... ")
            bench.log(f"scenario 5: real run, {n} rows")
            began = time.monotonic()
            log = bench.tmp / f"time-5-real-{n}.log"
            code, real[n] = peak_rss(bench, args, log)
            seconds[n] = time.monotonic() - began
        if code != 0:
            raise BenchError(f"real run of {n} rows exited {code}: {tail(log)}")
    small = p.s5_small_rows
    extra = big - small
    real_slope = (real[big] - real[small]) / extra
    dry_slope = (dry[big] - dry[small]) / extra
    excess = real_slope - dry_slope
    reference = python_set_bytes_per_row(big)
    bench.row(
        "5",
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
    head = ("scenario", "figure", "measured", "target", "result", "details")
    cells = [
        head,
        *[(r.scenario, r.figure, r.measured, r.target, r.verdict, r.details) for r in rows],
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = []
    for number, cell in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cell[:5], widths, strict=True)) + "  " + cell[5]
        )
        if number == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


TIMELINE_KEYS = ("live_ok", "our_ok", "our_429")


def column(timeline: dict[int, dict[str, int]], key: str, end: int) -> list[int]:
    """Return ``key``'s count for each second from 0 to ``end`` (exclusive)."""
    return [timeline.get(second, {}).get(key, 0) for second in range(end)]


def chart(series: Sequence[Series], path: Path, quick: bool) -> None:
    """Draw requests per second, second by second, for scenarios 1-3 against their limits."""
    if not series:
        return
    import matplotlib as mpl  # noqa: PLC0415 - a dev-only dependency, loaded when drawing

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ordered = sorted(series, key=lambda s: s.title)
    fig, axes = plt.subplots(len(ordered), 1, figsize=(13, 3.2 * len(ordered)), squeeze=False)
    for ax, s in zip(axes[:, 0], ordered, strict=True):
        end = max(s.timeline, default=0) + 1
        xs = list(range(end))
        live, ours, refused = (column(s.timeline, key, end) for key in TIMELINE_KEYS)
        if any(live):
            ax.bar(
                xs, live, width=1.0, align="edge", color="#bbbbbb", label="live traffic (admitted)"
            )
        ax.bar(
            xs,
            ours,
            width=1.0,
            align="edge",
            bottom=live,
            color="#1f77b4",
            label="bulkdelete (admitted)",
        )
        stacked = [a + b for a, b in zip(live, ours, strict=True)]
        ax.bar(
            xs,
            refused,
            width=1.0,
            align="edge",
            bottom=stacked,
            color="#d62728",
            label="bulkdelete 429",
        )
        ax.axhline(
            s.limit_rate,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"limit / window = {s.limit_rate:.0f}/s",
        )
        if s.free_rate is not None:
            ax.axhline(
                s.free_rate,
                color="green",
                linestyle=":",
                linewidth=1.2,
                label=f"free budget = {s.free_rate:.0f}/s",
            )
        for boundary in range(s.window, end, s.window):
            ax.axvline(boundary, color="grey", linewidth=0.5)
        ax.axvspan(*s.measured, color="yellow", alpha=0.25, zorder=0, label="measured")
        peak = max((a + b for a, b in zip(stacked, refused, strict=True)), default=0)
        ax.set_ylim(0, max(peak, s.limit_rate) * 1.3)
        ax.set_title(s.title)
        ax.set_xlim(0, end)
        ax.set_ylabel("requests / s")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("seconds since the first counted request (server timeline)")
    if quick:
        fig.suptitle("QUICK MODE (shortened windows): not the benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine_info(bench: Bench) -> list[tuple[str, str]]:
    def out(*args: str) -> str:
        try:
            return subprocess.run(
                args, capture_output=True, text=True, check=False, cwd=ROOT
            ).stdout.strip()
        except OSError:
            return "?"

    dirty = " (uncommitted changes)" if out("git", "status", "--porcelain") else ""
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
        "| scenario | figure | measured | target | result | details |",
        "|---|---|---|---|---|---|",
    ]
    for r in bench.rows:
        lines.append(
            f"| {r.scenario} | {r.figure} | {r.measured} | {r.target} | {r.verdict} | "
            f"{r.details.replace('|', '/')} |"
        )
    lines += [
        "",
        "![requests per second against the limit](bench/throughput.png)",
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in machine_info(bench)],
        "",
        "## Commands",
        "",
        f"Mode `{p.name}`: scenarios 1-2 use a {p.limit}/{p.window} s fixed window, "
        f"windows 1-{p.measured_windows} measured; scenario 3 {p.s3_seconds} s; scenarios 1-3 ran "
        "at the same time, 4 and 5 alone. `$TMP` is the bench's temporary directory.",
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
        bench.row(scenario, "(scenario failed)", "-", "-", False, str(error)[:300])
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shortened windows and inputs")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--only",
        default="12345",
        help="scenarios to run, e.g. 45; a partial run writes no BENCHMARKS.md or chart",
    )
    options = parser.parse_args(argv)
    if not options.only or set(options.only) - set("12345"):
        parser.error("--only takes scenario numbers from 12345")
    partial = set(options.only) != set("12345")
    profile = QUICK if options.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="bench-pacing-"))
    bench = Bench(profile, tmp)
    command = ".venv/bin/python bench/pacing.py" + (" --quick" if options.quick else "")
    if options.quick:
        bench.log("QUICK MODE: shortened windows and inputs; figures are for the harness only")
    began = time.monotonic()
    try:
        paced = [
            (s, run)
            for s, run in (
                ("1", lambda: scenario_fixed_window(bench, live=False)),
                ("2", lambda: scenario_fixed_window(bench, live=True)),
                ("3", lambda: scenario_latency(bench)),
            )
            if s in options.only
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(guarded, bench, s, run) for s, run in paced]:
                future.result()
        rate = None
        if "4" in options.only:
            rate = guarded(bench, "4", lambda: scenario_throughput(bench))
        if "5" in options.only:
            guarded(bench, "5", lambda: scenario_memory(bench, rate or 1500.0))
    finally:
        bench.cleanup()
    bench.sample_load()
    elapsed = time.monotonic() - began
    bench.rows.sort(key=lambda r: r.scenario)
    title = "QUICK MODE - not the benchmark" if options.quick else "full run"
    loads = " / ".join(f"{load:.1f}" for load in bench.loads)
    print(f"\nbench/pacing.py: {title}, {elapsed / 60:.1f} min, load average {loads}\n")
    print(table(bench.rows))
    if partial:
        print("\npartial run (--only): BENCHMARKS.md and bench/throughput.png left as they were")
    else:
        chart(bench.series, BENCH / "throughput.png", options.quick)
        (ROOT / "BENCHMARKS.md").write_text(markdown(bench, command, elapsed), encoding="utf-8")
        print("\nwrote BENCHMARKS.md and bench/throughput.png")
    if options.keep_dir:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(r.ok is False for r in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
