"""Progress display: a live bar on a terminal, a ``progress`` log event elsewhere.

The run hands a ``Snapshot`` of plain values to a ``Reporter`` a few times a second; this
module knows nothing else of the pipeline. Once the API's headers have taught the pacer a
budget, the rate shown and the ETA come from it (what whole windows leave the run), not from the
last seconds' pace, which a pause or a window's end skews; until then they come from the rows
done over the last 30 seconds. ``choose_reporter`` picks the reporter for a stream:
``BarReporter`` on a terminal, ``LogReporter`` off one (cron, Kubernetes), ``NullReporter``
when progress is turned off.

Logs and the bar share the terminal. Anything written to it behind rich's back while the bar is
live lands in the middle of the bar, so logs must go through ``ConsoleWriter(bar.console)``,
which prints each whole line above the bar and then redraws the bar below it.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

LOG_INTERVAL: Final = 5.0
# Long enough to smooth over a pause or a burst of retries, short enough to follow a new limit.
_RATE_WINDOW: Final = 30.0
_SEPARATOR: Final = " · "
_BAR_WIDTH: Final = 40


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of a run at one moment, as plain values: everything a display needs."""

    done: int  # rows given an outcome by this run
    total: int | None  # rows expected in all, skipped ones included; None when open-ended
    skipped: int  # rows an earlier run settled (``--resume``)
    counts: Mapping[str, int]  # outcome name -> rows; shown in this order
    in_flight: int
    retrying: int  # UIDs waiting between two attempts
    rate_in_use: float | None  # requests per second the pacer allows now
    limit_per_minute: int | None  # learned from the API's headers
    budget_left: int | None  # requests left in the API's current window
    expected_rate: float | None  # requests per second whole windows leave the run, once learned
    paused_for: float  # seconds left of a run-wide pause
    elapsed: float  # seconds since the run started
    requests: int

    @property
    def settled(self) -> int:
        """Rows that need nothing more: done by this run or skipped as done by an earlier one."""
        return self.done + self.skipped

    @property
    def percent(self) -> float | None:
        """Return how much of ``total`` is settled, or None when there is no total."""
        if self.total is None:
            return None
        return 100.0 * self.settled / self.total if self.total else 100.0  # nothing to do: done


class Reporter(Protocol):
    """What the run calls: ``update`` a few times a second, ``close`` once at the end."""

    def update(self, snapshot: Snapshot) -> None: ...

    def close(self, snapshot: Snapshot) -> None: ...


class _RateWindow:
    """Rows done per second over the last ``_RATE_WINDOW`` seconds of snapshots."""

    def __init__(self) -> None:
        # A run starts with nothing done, so the origin is a true sample.
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)])

    def add(self, snapshot: Snapshot) -> float | None:
        """Record ``snapshot`` and return the rate, or None before any time has passed."""
        samples = self._samples
        samples.append((snapshot.elapsed, snapshot.done))
        # Keep the last sample at or before the window's start, so the rate spans the window
        # (the newest sample is never before it, so there are always two).
        while samples[1][0] <= snapshot.elapsed - _RATE_WINDOW:
            samples.popleft()
        since, done_then = samples[0]
        if snapshot.elapsed <= since:
            return None
        return (snapshot.done - done_then) / (snapshot.elapsed - since)


def _pace(snapshot: Snapshot, measured: float | None) -> float | None:
    """Return the rows per second to show and to reckon the ETA with.

    The learned budget, in rows: requests per second over the requests each row has taken so
    far (retries add some, invalid rows none); the measured rate until a budget is known.
    """
    if snapshot.expected_rate is None:
        return measured
    per_row = snapshot.requests / snapshot.done if snapshot.done and snapshot.requests else 1.0
    return snapshot.expected_rate / per_row


def _eta(snapshot: Snapshot, rate: float | None) -> float | None:
    if snapshot.total is None or not rate:  # a stalled run has no ETA either
        return None
    return max(snapshot.total - snapshot.settled, 0) / rate


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class NullReporter:
    """Show nothing (``--no-progress``)."""

    def update(self, snapshot: Snapshot) -> None:
        """Do nothing."""

    def close(self, snapshot: Snapshot) -> None:
        """Do nothing."""


class LogReporter:
    """Emit a ``progress`` event every ``interval`` seconds of the run, and once at the end.

    Time is the snapshots' ``elapsed``, the run's own clock, so the caller must call ``update``
    more often than ``interval`` for events to come that often. ``emit(event, **fields)`` is a
    log method such as structlog's ``log.info``.
    """

    def __init__(self, emit: Callable[..., object], *, interval: float = LOG_INTERVAL) -> None:
        self._emit = emit
        self._interval = interval
        self._window = _RateWindow()
        self._last = 0.0  # the run's start: the first event comes one interval in

    def update(self, snapshot: Snapshot) -> None:
        """Record ``snapshot``; emit it if ``interval`` seconds passed since the last event."""
        rate = _pace(snapshot, self._window.add(snapshot))
        if snapshot.elapsed - self._last >= self._interval:
            self._last = snapshot.elapsed
            self._send(snapshot, rate)

    def close(self, snapshot: Snapshot) -> None:
        """Emit the final state."""
        self._send(snapshot, _pace(snapshot, self._window.add(snapshot)))

    def _send(self, snapshot: Snapshot, rate: float | None) -> None:
        self._emit(
            "progress",
            done=snapshot.done,
            skipped=snapshot.skipped,
            total=snapshot.total,
            percent=_round(snapshot.percent, 1),
            rate=_round(rate, 1),
            eta_seconds=_round(_eta(snapshot, rate), 0),
            **snapshot.counts,
            requests=snapshot.requests,
            in_flight=snapshot.in_flight,
            retrying=snapshot.retrying,
            rate_in_use=_round(snapshot.rate_in_use, 1),
            limit_per_minute=snapshot.limit_per_minute,
            budget_left=snapshot.budget_left,
            expected_rate=_round(snapshot.expected_rate, 1),
            paused_for=round(snapshot.paused_for, 3),
        )


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class BarReporter:
    """A live bar on a terminal: progress, then lines of outcome counts, pacing, and work.

    The display starts with the first ``update`` (so prompts before the run are left alone),
    redraws itself ``refresh_per_second`` times, and stays on screen after ``close``.
    """

    def __init__(self, console: Console, *, refresh_per_second: float = 4.0) -> None:
        self._console = console
        self._window = _RateWindow()
        self._spinner = Spinner("dots")  # one instance, so it turns from frame to frame
        self._live = Live(
            console=console,
            refresh_per_second=refresh_per_second,
            transient=False,
            # stdout carries data and may be a pipe: it must never be diverted to the terminal.
            redirect_stdout=False,
        )

    @property
    def console(self) -> Console:
        """The console the bar draws on; print anything meant for the terminal through it."""
        return self._console

    def update(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` from the next redraw on."""
        self._show(snapshot, finished=False)

    def close(self, snapshot: Snapshot) -> None:
        """Draw ``snapshot`` as the final state and stop redrawing."""
        self._show(snapshot, finished=True)
        self._live.stop()

    def _show(self, snapshot: Snapshot, *, finished: bool) -> None:
        rate = _pace(snapshot, self._window.add(snapshot))
        self._live.update(
            Group(
                self._head(snapshot, rate, finished=finished),
                *(Text(line) for line in _details(snapshot)),
            )
        )
        self._live.start(refresh=True)  # draws the first frame at once; no-op once started

    def _head(self, snapshot: Snapshot, rate: float | None, *, finished: bool) -> Table:
        settled, total = snapshot.settled, snapshot.total
        # Open-ended: the bar pulses while the run goes on and is full once it ended.
        bar_total = total if total is not None else settled if finished else None
        cells: list[RenderableType] = [
            self._spinner,
            ProgressBar(total=bar_total, completed=settled, width=_BAR_WIDTH),
        ]
        if total is None:
            cells += [f"{settled:,}", _per_second(rate)]
        else:
            eta = f"ETA {_clock(_eta(snapshot, rate))}"
            cells += [f"{settled:,}/{total:,}", f"{snapshot.percent:.1f}%", _per_second(rate), eta]
        head = Table.grid(padding=(0, 1))
        head.add_row(*cells)
        return head


def _per_second(rate: float | None) -> str:
    return "-/s" if rate is None else f"{rate:,.1f}/s"


def _details(snapshot: Snapshot) -> list[str]:
    """Return the lines under the bar: outcome counts, pacing, work under way."""
    outcomes = [f"{name} {count:,}" for name, count in snapshot.counts.items()]
    if snapshot.skipped:
        outcomes.append(f"skipped {snapshot.skipped:,}")
    learned = (
        ("rate {:,.0f}/s", snapshot.rate_in_use),
        ("limit {:,}/min", snapshot.limit_per_minute),
        ("budget {:,} left", snapshot.budget_left),
    )
    pacing = [form.format(value) for form, value in learned if value is not None]
    pacing.append(f"paused {snapshot.paused_for:.1f}s")
    work = [
        f"in flight {snapshot.in_flight:,}",
        f"retrying {snapshot.retrying:,}",
        f"requests {snapshot.requests:,}",
    ]
    return [_SEPARATOR.join(parts) for parts in (outcomes, pacing, work)]


class ConsoleWriter(io.TextIOBase, TextIO):  # a TextIO, so it goes wherever loggers take one
    """A text stream that prints whole lines through a rich console, above any live display.

    Pass it as the log stream while a ``BarReporter`` is shown: structlog's ``PrintLogger``
    keeps the stream it was given, so rich's own redirection of ``sys.stderr`` cannot reach it.
    ANSI colours in the text are kept; it says it is a terminal when the console is one.
    """

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console
        self._pending = ""
        # structlog and the logging module each lock the stream with their own lock.
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Print every line that ``text`` completes; keep a trailing partial line for later."""
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
            if lines:
                self._print(lines)
        return len(text)

    def flush(self) -> None:
        """Print a pending partial line."""
        with self._lock:
            if self._pending:
                self._print([self._pending])
                self._pending = ""

    def isatty(self) -> bool:
        """Tell whether the console is a terminal, so loggers pick their terminal format."""
        return self._console.is_terminal

    def _print(self, lines: list[str]) -> None:
        # One print for all lines: the live display is redrawn once, not once per line.
        text = Text("\n").join(Text.from_ansi(line) for line in lines)
        # soft_wrap: a long line stays one line (the terminal folds it), whole when copied.
        self._console.print(text, soft_wrap=True)


def choose_reporter(*, stream: TextIO, enabled: bool, emit: Callable[..., object]) -> Reporter:
    """Return the reporter for ``stream``: a bar on a terminal, ``emit`` events elsewhere."""
    if not enabled:
        return NullReporter()
    if stream.isatty():
        return BarReporter(Console(file=stream))
    return LogReporter(emit)
