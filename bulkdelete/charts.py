"""Throughput charts: answered UIDs per second over each run, as inline SVG.

``throughput`` makes a streaming pass over the audits. Per run it counts the UIDs that got an
answer (rows with ``attempts`` > 0) in time buckets from the run's start. The dashed ceiling is
the run's ``--rate``, or under ``--rate auto`` the limit the server's headers advertised
(``limit_per_minute`` in its ``run_finished``; none when the run never learned one, and then
none is drawn). Memory is at most MAX_POINTS counters per run, however long the run: when a run
needs more buckets, neighbours are merged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from bulkdelete.audit import read_records
from bulkdelete.errors import AuditError
from bulkdelete.htmlkit import e as _e
from bulkdelete.outcome import ROW_ONLY_OUTCOMES
from bulkdelete.records import Record, RowOutcome, RunFinished, RunStarted

MAX_POINTS: Final = 300  # buckets per run, at most
_COARSE_MS, _MIN_POINTS = 1_000, 20  # automatic buckets under 1 s only to keep 20 points
# Automatic bucket widths in ms; each is a whole multiple of the one before, so buckets merge
# exactly. Past the last one, widths double.
_WIDTHS_MS: Final = (100, 200, 1_000, 2_000, 10_000, 20_000, 60_000, 120_000, 600_000, 3_600_000)
LINE: Final = "#1f77b4"  # answered UIDs/s; the browser test counts pixels of these two colours
LIMIT: Final = "#d62728"  # the rate ceiling; used nowhere else on the page
_UNITS: Final = ((1, "s", 180), (60, "min", 3 * 3600), (3600, "h", math.inf))
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 1000, 280, 64, 16, 34, 46


@dataclass(frozen=True, slots=True)
class RunThroughput:
    """One run's answered UIDs per bucket; bucket ``i`` starts ``i * bucket_seconds`` in."""

    run_id: str
    started: str
    bucket_seconds: float
    counts: tuple[int, ...]
    rate_limit: float | None  # the run's ceiling in requests/s, None when the audit lacks it

    def per_second(self) -> tuple[float, ...]:
        """Return each bucket's answered UIDs per second."""
        return tuple(count / self.bucket_seconds for count in self.counts)


@dataclass(frozen=True, slots=True)
class Throughput:
    """The chart data of every run in the audits, in the order the runs started."""

    runs: tuple[RunThroughput, ...]
    sources: tuple[str, ...] = ()  # the audit files read


@dataclass(slots=True)
class _Buckets:
    started: str
    start_ms: int
    width_ms: int
    rate_limit: float | None
    learns_limit: bool  # ``--rate auto``: the ceiling is the limit its run_finished says it learned
    counts: list[int] = field(default_factory=list)

    def cover(self, at_ms: int) -> int:
        """Grow the buckets to reach ``at_ms``, widening past MAX_POINTS; return its index."""
        offset = max(at_ms - self.start_ms, 0)  # a clock step back lands in the first bucket
        while offset // self.width_ms >= MAX_POINTS:
            self.widen()
        index = offset // self.width_ms
        self.counts.extend([0] * (index + 1 - len(self.counts)))
        return index

    def wider(self) -> int:
        width = self.width_ms
        return next((w for w in _WIDTHS_MS if w > width and w % width == 0), width * 2)

    def widen(self) -> None:
        wider = self.wider()
        factor = wider // self.width_ms
        merged = [0] * -(-len(self.counts) // factor)
        for index, count in enumerate(self.counts):
            merged[index // factor] += count
        self.counts, self.width_ms = merged, wider


def throughput(paths: Sequence[Path], *, bucket_seconds: float | None = None) -> Throughput:
    """Read the audits at ``paths`` and return each run's answered UIDs over time.

    Buckets are ``bucket_seconds`` wide, or wider where a run would need more than MAX_POINTS
    of them. When None, they start at 0.1 s and end at 1 s or more unless that would leave a
    run with under 20 points (sub-second buckets show bursts of answers, not pacing). Raises
    ``AuditError`` for a line that is no record or has no usable ``ts``; lines of a run with no
    ``run_started`` line before them are skipped (``build_report`` refuses them).
    """
    start_width = max(1, round((bucket_seconds or 0.1) * 1000))
    runs: dict[str, _Buckets] = {}
    for path in paths:
        for number, record in read_records(path):
            try:
                _count(runs, record, start_width)
            except ValueError as exc:
                message = f"not a timestamp ({exc})"
                raise AuditError(message, path=str(path), line=number) from exc
    for b in runs.values() if bucket_seconds is None else ():
        while b.width_ms < _COARSE_MS and len(b.counts) * b.width_ms >= _MIN_POINTS * b.wider():
            b.widen()
    return Throughput(
        runs=tuple(
            RunThroughput(run_id, b.started, b.width_ms / 1000, tuple(b.counts), b.rate_limit)
            for run_id, b in runs.items()
        ),
        sources=tuple(str(path) for path in paths),
    )


def _count(runs: dict[str, _Buckets], record: Record, start_width: int) -> None:
    run_id, ts = record.run_id, record.ts
    if run_id is None or ts is None:
        return  # an event of a later version that belongs to no run
    at_ms = round(datetime.fromisoformat(ts).timestamp() * 1000)
    if isinstance(record, RunStarted):
        rate = record.settings.rate
        runs[run_id] = _Buckets(ts, at_ms, start_width, _ceiling(rate), rate == "auto")
    elif (buckets := runs.get(run_id)) is not None:
        index = buckets.cover(at_ms)  # every line extends the run, so pauses at its end show
        if isinstance(record, RowOutcome):
            if record.outcome not in ROW_ONLY_OUTCOMES and record.attempts > 0:
                buckets.counts[index] += 1
        elif isinstance(record, RunFinished) and buckets.learns_limit and record.limit_per_minute:
            buckets.rate_limit = _ceiling(record.limit_per_minute / 60)


def _ceiling(rate: float | str) -> float | None:
    """Return a rate in requests per second as a ceiling to draw; None for none (``auto``)."""
    return rate if isinstance(rate, float) and 0 < rate < math.inf else None


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _line(x1: float, y1: float, x2: float, y2: float, style: str = 'class="axis"') -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}/>'


def _text(x: float, y: float, text: str, style: str = 'text-anchor="middle"') -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" {style}>{text}</text>'


def chart_svg(run: RunThroughput) -> str:
    """Return an SVG line chart of one run's answered UIDs/s, with its rate ceiling dashed."""
    rates = run.per_second()
    if not any(rates):
        return '<p class="muted">No UID of this run got an answer: nothing to chart.</p>'
    duration = len(rates) * run.bucket_seconds
    y_step = _nice_step(max(*rates, run.rate_limit or 0) * 1.1)
    top = math.ceil(max(*rates, run.rate_limit or 0) * 1.1 / y_step) * y_step
    unit, unit_name = next((size, name) for size, name, most in _UNITS if duration <= most)
    x_step = _nice_step(duration / unit) * unit
    left, right, base = _LEFT, _W - _RIGHT, _H - _BOTTOM

    def x(seconds: float) -> float:
        return left + seconds / duration * (right - left)

    def y(rate: float) -> float:
        return base - rate / top * (base - _TOP)

    points = " ".join(
        f"{x((i + 0.5) * run.bucket_seconds):.1f},{y(rate):.1f}" for i, rate in enumerate(rates)
    )
    first, last = x(0.5 * run.bucket_seconds), x(duration - 0.5 * run.bucket_seconds)
    dashed = f'stroke="{LIMIT}" stroke-width="2" stroke-dasharray="8 5"'
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="UIDs answered per second in run {_e(run.run_id)}">',
        *(
            _line(left, y(v), right, y(v), 'class="grid"')
            + _text(left - 6, y(v) + 4, f"{v:g}", 'text-anchor="end"')
            for v in (i * y_step for i in range(round(top / y_step) + 1))
        ),
        *(
            _line(x(t), base, x(t), base + 5) + _text(x(t), base + 18, f"{t / unit:g}")
            for t in (i * x_step for i in range(math.floor(duration / x_step) + 1))
        ),
        f'<polygon points="{first:.1f},{base} {points} {last:.1f},{base}" fill="{LINE}" '
        'fill-opacity="0.15" stroke="none"/>',
        f'<polyline points="{points}" fill="none" stroke="{LINE}" stroke-width="2.5" '
        'stroke-linejoin="round"/>',
        _line(left, _TOP, left, base) + _line(left, base, right, base),
        _text(left - 6, _TOP - 12, "UIDs/s", 'text-anchor="end"'),
        _text((left + right) / 2, _H - 8, f"time since the run started ({unit_name})"),
        _line(left + 10, 14, left + 40, 14, f'stroke="{LINE}" stroke-width="2.5"'),
        _text(left + 46, 18, f"UIDs answered per second, per {run.bucket_seconds:g} s", ""),
    ]
    if run.rate_limit is not None:
        parts += [
            _line(left, y(run.rate_limit), right, y(run.rate_limit), dashed),
            _line(left + 330, 14, left + 360, 14, dashed),
            _text(left + 366, 18, f"rate limit: {run.rate_limit:.4g} requests/s", ""),
        ]
    return "".join(parts) + "</svg>"
