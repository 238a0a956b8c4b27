"""Progress: the log event off a terminal, the live bar on one, and logs printed above the bar."""

from __future__ import annotations

import dataclasses
import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console

from bulkdelete.progress import (
    BarReporter,
    ConsoleWriter,
    LogReporter,
    NullReporter,
    Snapshot,
    choose_reporter,
)

ROOT = Path(__file__).resolve().parents[1]
START = Snapshot(
    done=0,
    total=20,
    skipped=0,
    counts={"deleted": 0, "not_found": 0, "failed": 0, "invalid": 0, "duplicate": 0},
    in_flight=0,
    retrying=0,
    rate_in_use=None,
    limit_per_minute=None,
    budget_left=None,
    expected_rate=None,
    paused_for=0.0,
    elapsed=0.0,
    requests=0,
)
MIDWAY = dataclasses.replace(
    START,
    done=12,
    counts={"deleted": 10, "not_found": 1, "failed": 1, "invalid": 0, "duplicate": 0},
    in_flight=3,
    retrying=2,
    rate_in_use=160.0,
    limit_per_minute=10_000,
    budget_left=8123,
    paused_for=1.5,
    elapsed=3.0,
    requests=14,
)
COUNTS_LINE = "deleted 10 · not_found 1 · failed 1 · invalid 0 · duplicate 0"
PACING_LINE = "rate 160/s · limit 10,000/min · budget 8,123 left · paused 1.5s"
WORK_LINE = "in flight 3 · retrying 2 · requests 14"
_TERMINAL_OUTPUT = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|(\r)|(\n)|([^\x1b\r\n]+)")


class Events:
    """A fake ``emit`` that keeps what it was given."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.seen.append({"event": event, **fields})


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def screen(output: str) -> list[str]:
    """Replay what rich wrote to a terminal and return the screen's lines, right-trimmed.

    Enough of a terminal for rich's live display: text, carriage return, line feed (the tty
    driver adds the carriage return), cursor up and erase line; colours and cursor hiding are
    ignored.
    """
    lines = [""]
    row = col = 0
    for match in _TERMINAL_OUTPUT.finditer(output):
        params, command, cr, lf, text = match.groups()
        if text:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + text + line[col + len(text) :]
            col += len(text)
        elif cr:
            col = 0
        elif lf:
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif command == "A":
            row = max(row - int(params or 1), 0)
        elif command == "K":
            assert params == "2", "only whole-line erasing is replayed"
            lines[row] = ""
    return [line.rstrip() for line in lines]


def bar_console() -> Console:
    """Return a console that renders like a 120-column terminal into a string."""
    return Console(file=io.StringIO(), force_terminal=True, width=120)


def final_screen(console: Console) -> list[str]:
    """Return the non-blank lines left on the screen by everything ``console`` wrote."""
    assert isinstance(console.file, io.StringIO)
    return [line for line in screen(console.file.getvalue()) if line]


def test_log_reporter_emits_at_most_once_per_interval() -> None:
    """Updates every second give one event per 5 s of the run, none before the first 5 s."""
    events = Events()
    reporter = LogReporter(events)
    for second in range(1, 13):
        reporter.update(dataclasses.replace(START, done=second, elapsed=float(second)))
    assert [e["done"] for e in events.seen] == [5, 10]


def test_log_reporter_emits_final_state_on_close() -> None:
    """Closing emits the final snapshot even when an event went out just before."""
    events = Events()
    reporter = LogReporter(events)
    reporter.update(dataclasses.replace(START, done=5, elapsed=5.0))
    reporter.close(dataclasses.replace(START, done=6, elapsed=5.5))
    assert [(e["event"], e["done"]) for e in events.seen] == [("progress", 5), ("progress", 6)]


def test_log_reporter_fields() -> None:
    """The event carries percent of total, the window's rate, the ETA it gives, and the rest."""
    events = Events()
    reporter = LogReporter(events)
    reporter.update(dataclasses.replace(MIDWAY, total=1100, done=100, elapsed=2.5))
    reporter.update(dataclasses.replace(MIDWAY, total=1100, done=200, skipped=100, elapsed=5.0))
    assert events.seen == [
        {
            "event": "progress",
            "done": 200,
            "skipped": 100,
            "total": 1100,
            "percent": 27.3,  # (200 done + 100 skipped) / 1100
            "rate": 40.0,  # 200 done in 5 s
            "eta_seconds": 20.0,  # 800 rows left at 40/s
            "deleted": 10,
            "not_found": 1,
            "failed": 1,
            "invalid": 0,
            "duplicate": 0,
            "requests": 14,
            "in_flight": 3,
            "retrying": 2,
            "rate_in_use": 160.0,
            "limit_per_minute": 10_000,
            "budget_left": 8123,
            "expected_rate": None,
            "paused_for": 1.5,
        }
    ]


def test_rate_and_eta_come_from_the_learned_budget() -> None:
    """Once the pacer knows the budget, the rate and ETA come from it, not the last seconds.

    400 rows in the first 5 s of a window say 80/s; the budget says 50 requests/s and each
    row has taken 1.25 requests (retries): 40 rows/s, so 9,600 rows left take 240 s.
    """
    events = Events()
    reporter = LogReporter(events)
    snapshot = dataclasses.replace(
        START, total=10_000, done=400, requests=500, expected_rate=50.0, elapsed=5.0
    )
    reporter.update(snapshot)
    console = bar_console()
    BarReporter(console).close(snapshot)
    assert [(e["rate"], e["eta_seconds"], e["expected_rate"]) for e in events.seen] == [
        (40.0, 240.0, 50.0)
    ]
    assert "40.0/s ETA 0:04:00" in final_screen(console)[0]


def test_log_reporter_rate_follows_the_last_30_seconds() -> None:
    """After a stalled first half minute the rate is that of the last 30 s, not the run's."""
    events = Events()
    reporter = LogReporter(events)
    reporter.update(dataclasses.replace(START, total=1000, done=0, elapsed=30.0))
    reporter.update(dataclasses.replace(START, total=1000, done=300, elapsed=60.0))
    assert [(e["rate"], e["eta_seconds"]) for e in events.seen] == [(0.0, None), (10.0, 70.0)]


def test_log_reporter_open_ended() -> None:
    """Without a total the event has no percent and no ETA, but still a rate."""
    events = Events()
    reporter = LogReporter(events)
    reporter.close(dataclasses.replace(START, total=None, done=50, elapsed=10.0))
    (event,) = events.seen
    assert (event["total"], event["percent"], event["rate"], event["eta_seconds"]) == (
        None,
        None,
        5.0,
        None,
    )


def test_nothing_to_do_is_complete() -> None:
    """A total of zero rows is 100 % settled, on the bar and in the event alike."""
    events = Events()
    LogReporter(events).close(dataclasses.replace(START, total=0, elapsed=1.0))
    console = bar_console()
    BarReporter(console).close(dataclasses.replace(START, total=0, elapsed=1.0))
    assert events.seen[0]["percent"] == 100.0
    assert "0/0 100.0%" in final_screen(console)[0]


def test_choose_reporter() -> None:
    """A bar on a terminal, log events elsewhere, nothing at all when progress is off."""
    events = Events()
    assert isinstance(
        choose_reporter(stream=FakeTerminal(), enabled=True, emit=events), BarReporter
    )
    assert isinstance(choose_reporter(stream=io.StringIO(), enabled=True, emit=events), LogReporter)
    for stream in (FakeTerminal(), io.StringIO()):
        assert isinstance(choose_reporter(stream=stream, enabled=False, emit=events), NullReporter)


def test_bar_shows_progress_counts_and_pacing() -> None:
    """The bar's three lines: done/total, percent, rate and ETA; outcome counts; pacing."""
    console = bar_console()
    reporter = BarReporter(console)
    reporter.update(dataclasses.replace(START, done=4, elapsed=1.0))
    reporter.close(MIDWAY)
    head, counts, pacing, work = final_screen(console)
    # 12 rows in 3 s leave 8 rows: 2 s at 4 rows/s.
    assert head.split()[-5:] == ["12/20", "60.0%", "4.0/s", "ETA", "0:00:02"]
    assert (counts, pacing, work) == (COUNTS_LINE, PACING_LINE, WORK_LINE)


def test_bar_before_any_time_passed() -> None:
    """At the run's first instant there is no rate yet, so neither rate nor ETA is shown."""
    console = bar_console()
    reporter = BarReporter(console)
    reporter.close(START)
    assert reporter.console is console
    assert final_screen(console)[0].split()[-5:] == ["0/20", "0.0%", "-/s", "ETA", "-:--:--"]


def test_bar_open_ended() -> None:
    """Without a total the bar shows the rows done and the rate, no percent and no ETA."""
    console = bar_console()
    reporter = BarReporter(console)
    reporter.close(dataclasses.replace(MIDWAY, total=None, skipped=3))
    head, counts, *_ = final_screen(console)
    assert head.split()[-2:] == ["15", "4.0/s"]
    assert "%" not in head
    assert "ETA" not in head
    assert counts == f"{COUNTS_LINE} · skipped 3"


def test_bar_keeps_log_lines_whole_and_itself_below_them() -> None:
    """Lines logged through ConsoleWriter while the bar is live end up above one intact bar."""
    console = bar_console()
    reporter = BarReporter(console)
    writer = ConsoleWriter(console)
    for done in range(1, 13):
        reporter.update(dataclasses.replace(MIDWAY, done=done, elapsed=done / 4))
        if done % 4 == 0:
            print(f"log line {done} key=value", file=writer, flush=True)
    reporter.close(MIDWAY)
    *logged, head, counts, pacing, work = final_screen(console)
    assert logged == ["log line 4 key=value", "log line 8 key=value", "log line 12 key=value"]
    assert "12/20" in head
    assert (counts, pacing, work) == (COUNTS_LINE, PACING_LINE, WORK_LINE)


def test_console_writer_prints_whole_lines_only() -> None:
    """Text is held until its line ends; flush prints what is held; colours are not shown."""
    console = bar_console()
    writer = ConsoleWriter(console)
    writer.write("first ")
    writer.write("\x1b[32mline\x1b[0m\nsecond line\nthird")
    assert final_screen(console) == ["first line", "second line"]
    writer.flush()
    assert final_screen(console) == ["first line", "second line", "third"]
    assert writer.isatty()


# Drives the bar like a run of 20 rows, logging through structlog as the CLI would.
_CHILD = """
import sys, time
import structlog
from rich.console import Console
from bulkdelete.progress import BarReporter, ConsoleWriter, Snapshot

bar = BarReporter(Console(file=sys.stderr), refresh_per_second=50)
structlog.configure(
    processors=[
        structlog.processors.add_log_level,
        structlog.dev.ConsoleRenderer(colors=True),
    ],
    logger_factory=structlog.PrintLoggerFactory(ConsoleWriter(bar.console)),
)
log = structlog.get_logger()
counts = dict.fromkeys(("deleted", "not_found", "failed", "invalid", "duplicate"), 0)
snapshot = None
for done in range(1, 21):
    counts["failed" if done == 7 else "not_found" if done in (3, 12) else "deleted"] += 1
    snapshot = Snapshot(
        done=done, total=20, skipped=0, counts=dict(counts), in_flight=2, retrying=0,
        rate_in_use=None, limit_per_minute=None, budget_left=None, expected_rate=None,
        paused_for=0.0, elapsed=done / 10, requests=done,
    )
    bar.update(snapshot)
    if done % 4 == 0:
        log.info("checkpoint", done=done)
    time.sleep(0.01)  # the pace of work, so the bar redraws on its own between rows
bar.close(snapshot)
"""


def run_in_pty(code: str, *, columns: int = 100, rows: int = 30) -> str:
    """Run Python ``code`` with stdin, stdout and stderr on a new pty; return what it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    unset = {"COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"TERM": "xterm-256color"}
    chunks: list[bytes] = []
    try:
        with subprocess.Popen(
            [sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT
        ) as child:
            os.close(slave)
            while select.select([master], [], [], 10)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every end of the terminal's slave side is closed
                    break
                chunks.append(chunk)
            returncode = child.wait(timeout=10)
    finally:
        os.close(master)
    output = b"".join(chunks).decode("utf-8", errors="replace")
    assert returncode == 0, output
    return output


def test_bar_and_logs_in_a_real_terminal() -> None:
    """Under a pty, logged lines stay whole above the bar, and the bar's final frame is alone."""
    output = run_in_pty(_CHILD)
    lines = [line for line in screen(output) if line]
    plain = structlog.dev.ConsoleRenderer(colors=False)
    expected = [
        plain(None, "info", {"event": "checkpoint", "level": "info", "done": done})
        for done in (4, 8, 12, 16, 20)
    ]
    *logged, head, counts, pacing, work = lines
    assert logged == expected, output
    assert "20/20" in head
    assert "100.0%" in head
    assert counts == "deleted 17 · not_found 2 · failed 1 · invalid 0 · duplicate 0"
    assert (pacing, work) == ("paused 0.0s", "in flight 2 · retrying 0 · requests 20")
