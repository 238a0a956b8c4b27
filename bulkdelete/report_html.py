"""Render audits as one self-contained HTML file that a reviewer can open offline.

The page has no scripts and loads nothing: the CSS and the SVG charts are inline, and a
Content-Security-Policy meta tag forbids fetching anything else. Every string that comes from an
audit is escaped, because UIDs, codes and targets are whatever the input file and the server said.

``throughput`` makes a second streaming pass over the audits for the charts. Per run it counts the
UIDs that got an answer (rows with ``attempts`` > 0) in time buckets from the run's start. The
dashed ceiling is the run's ``--rate``, or under ``--rate auto`` the limit the server's headers
advertised (``limit_per_minute`` in its ``run_finished``; none when the run never learned one).
Memory is at most MAX_POINTS counters per run, however long the run: when a run needs more
buckets, neighbours are merged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Final

from bulkdelete import __version__, privatefile
from bulkdelete.audit import read_records
from bulkdelete.errors import AuditError
from bulkdelete.outcome import ROW_ONLY_OUTCOMES, Outcome
from bulkdelete.records import Record, RowOutcome, RunFinished, RunStarted
from bulkdelete.report import KILLED, Report, RunInfo, build_report

CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
MAX_POINTS: Final = 300  # buckets per run, at most
_COARSE_MS, _MIN_POINTS = 1_000, 20  # automatic buckets under 1 s only to keep 20 points
# Automatic bucket widths in ms; each is a whole multiple of the one before, so buckets merge
# exactly. Past the last one, widths double.
_WIDTHS_MS: Final = (100, 200, 1_000, 2_000, 10_000, 20_000, 60_000, 120_000, 600_000, 3_600_000)
_LINE: Final = "#1f77b4"  # answered UIDs/s; the browser test counts pixels of these two colours
_LIMIT: Final = "#d62728"  # the rate ceiling; used nowhere else on the page
_UNITS: Final = ((1, "s", 180), (60, "min", 3 * 3600), (3600, "h", math.inf))
_RUN_HEADER: Final = "run id|status|started|finished|duration|requests|avg rate|permanent|target"
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


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(ts: str) -> str:
    return _e(ts).replace("T", " ", 1)  # lets a narrow column wrap between date and time


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _line(x1: float, y1: float, x2: float, y2: float, style: str = 'class="axis"') -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}/>'


def _text(x: float, y: float, text: str, style: str = 'text-anchor="middle"') -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" {style}>{text}</text>'


def _chart(run: RunThroughput) -> str:
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
    dashed = f'stroke="{_LIMIT}" stroke-width="2" stroke-dasharray="8 5"'
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
        f'<polygon points="{first:.1f},{base} {points} {last:.1f},{base}" fill="{_LINE}" '
        'fill-opacity="0.15" stroke="none"/>',
        f'<polyline points="{points}" fill="none" stroke="{_LINE}" stroke-width="2.5" '
        'stroke-linejoin="round"/>',
        _line(left, _TOP, left, base) + _line(left, base, right, base),
        _text(left - 6, _TOP - 12, "UIDs/s", 'text-anchor="end"'),
        _text((left + right) / 2, _H - 8, f"time since the run started ({unit_name})"),
        _line(left + 10, 14, left + 40, 14, f'stroke="{_LINE}" stroke-width="2.5"'),
        _text(left + 46, 18, f"UIDs answered per second, per {run.bucket_seconds:g} s", ""),
    ]
    if run.rate_limit is not None:
        parts += [
            _line(left, y(run.rate_limit), right, y(run.rate_limit), dashed),
            _line(left + 330, 14, left + 360, 14, dashed),
            _text(left + 366, 18, f"rate limit: {run.rate_limit:.4g} requests/s", ""),
        ]
    return "".join(parts) + "</svg>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int]) -> str:
    """Return an HTML table; cells must already be escaped."""

    def cells(tag: str, row: Sequence[str]) -> str:
        cls = (" class=num" if i in numeric else "" for i in range(len(row)))
        return "".join(f"<{tag}{c}>{cell}</{tag}>" for c, cell in zip(cls, row, strict=True))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _run_row(run: RunInfo) -> list[str]:
    status = _e(run.status) + (f" <code>{_e(run.fatal_code)}</code>" if run.fatal_code else "")
    if run.status != "completed":
        status = f'<span class="bad">{status}</span>'
    finished = _when(run.finished) if run.finished else '<span class="muted">never</span>'
    permanent = "yes" if run.permanent else '<span class="bad">no</span>'
    return [f"<code>{_e(run.run_id)}</code>", status, _when(run.started), finished,
            f"{run.duration_seconds:.1f} s", f"{run.requests:,}", f"{run.rate:.1f}/s",
            permanent, _e(run.target)]  # fmt: skip


def _cards(report: Report) -> str:
    cards = (
        ("deleted", report.totals.get(Outcome.DELETED, 0), False),
        ("not found", report.totals.get(Outcome.NOT_FOUND, 0), bool(report.not_found_in_permanent)),
        ("failed", report.totals.get(Outcome.FAILED, 0), True),
        ("unknown state", len(report.unknown), True),
        ("invalid rows", report.totals.get(Outcome.INVALID, 0), False),
        ("duplicate rows", report.totals.get(Outcome.DUPLICATE, 0), False),
    )
    return "".join(
        f'<div class="card{" bad" if bad and n else ""}"><b>{n:,}</b><span>{label}</span></div>'
        for label, n, bad in cards
    )


def _failures(report: Report) -> str:
    failed = sum(report.failures_by_code.values())
    rows = [
        [f"<code>{_e(code)}</code>", f"{count:,}", f"{count / failed:.0%}"]
        for code, count in report.failures_by_code.items()
    ]
    return _table(["error code", "failed UIDs", "share"], rows, numeric={1, 2})


def _uid_list(uids: Sequence[str]) -> str:
    items = "".join(f"<li>{_e(uid)}</li>" for uid in uids)
    return f'<div class="scroll"><ol class="uids">{items}</ol></div>'


def report_html(report: Report, chart: Throughput) -> str:
    """Return the report as one HTML5 document with inline CSS and SVG, and no scripts."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    sources = ", ".join(f"<code>{_e(source)}</code>" for source in chart.sources) or "no files"
    killed = sum(run.status == KILLED for run in report.runs)
    runs = _table(_RUN_HEADER.split("|"), [_run_row(r) for r in report.runs], numeric={4, 5, 6})
    unsure = len(report.not_found_in_permanent)
    charts = "".join(
        f"<h3>Run <code>{_e(run.run_id)}</code>, started {_when(run.started)}</h3>{_chart(run)}"
        for run in chart.runs
    )
    none = '<p class="muted">None.</p>'
    unknown = none
    if report.unknown:
        unknown = (
            "<p>Sent when a run was killed or stopped waiting, with no outcome since: nobody "
            "knows whether the server deleted them. A run with <code>--resume</code> settles "
            "them.</p>" + _uid_list(report.unknown)
        )
    not_found = ""
    if unsure:
        not_found = (
            f'<p class="bad">Not found by a permanent run: {unsure:,}. These UIDs may have been '
            "deactivated, not erased (listed at the end).</p>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>bulkdelete audit report</title>
<style>{_CSS}</style></head><body>
<header><h1>bulkdelete audit report</h1>
<p>Generated {generated} by bulkdelete {_e(__version__)} from {sources}:
runs: {len(report.runs)} ({killed} killed); UIDs with an outcome: {len(report.uids):,}.</p></header>
<section class="runs"><h2>Runs</h2>{runs}</section>
<section><h2>Latest outcome per UID</h2><div class="cards">{_cards(report)}</div>
{not_found}</section>
<section><h2>Throughput over time</h2><p class="muted">Each point counts the UIDs whose final
answer was written in that interval (retries are extra requests, not counted). The dashed line
is the run's ceiling on requests sent per second; answers can bunch up above it briefly.</p>
{charts or none}</section>
<section><h2>Failures by error code</h2>{_failures(report) if report.failures_by_code else none}
</section>
<section><h2>UIDs in unknown state ({len(report.unknown):,})</h2>{unknown}</section>
{_not_found(report)}
</body></html>
"""


def _not_found(report: Report) -> str:
    if not report.not_found_in_permanent:
        return ""
    return (
        '<section class="warning"><h2>Not found by a permanent run '
        f"({len(report.not_found_in_permanent):,})</h2><p><strong>Not found: may have been "
        "deactivated, not erased.</strong> CometChat answers not-found for deactivated users too, "
        f"so these UIDs may still exist, deactivated.</p>{_uid_list(report.not_found_in_permanent)}"
        "</section>"
    )


def write_html_report(paths: Sequence[Path], out: Path, *, report: Report | None = None) -> None:
    """Read the audits at ``paths`` and write their HTML report to ``out`` as UTF-8.

    ``report`` spares a second reading when the caller already built it from the same paths.
    Raises ``AuditError`` as ``build_report`` does, and ``OSError`` when ``out`` can't be written.
    """
    document = report_html(report or build_report(paths), throughput(paths))
    privatefile.write_bytes(out, document.encode("utf-8"))


_CSS: Final = """
body{font:15px/1.45 system-ui,sans-serif;color:#1d2329;background:#f6f7f9;margin:0 auto;
 padding:24px 32px;max-width:1100px}h1{font-size:26px;margin:0 0 4px}header p{color:#555;margin:0}
h2{font-size:19px;margin:0 0 12px}h3{font-size:15px;margin:14px 0 4px}.card span{color:#555}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 20px;margin:16px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card b{display:block;font-size:26px}
.card{flex:1;min-width:130px;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px}
.card.bad{border-color:#e5a0a0;background:#fdf0f0}.card.bad b,.bad{color:#b3191f}
table{border-collapse:collapse;width:100%;font-size:14px}th{background:#f0f2f5}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e9ed;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums}.runs td:nth-child(-n+2){white-space:nowrap}
code,.uids{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}
.bad{font-weight:600}.muted{color:#666}.warning{border-color:#e5a0a0;background:#fff6f6}
.scroll{max-height:16em;overflow:auto;border:1px solid #dde1e6;border-radius:6px;background:#fafbfc}
.uids{margin:0;padding:8px 8px 8px 4.5em}.uids li,td{overflow-wrap:anywhere}
svg.chart{width:100%;height:auto;font-size:13px;fill:#333}
svg .grid{stroke:#e3e6ea}svg .axis{stroke:#333}
"""
