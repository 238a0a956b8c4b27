"""The HTML report: its content, its escaping, its chart data, and how it loads in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser import PageLoad, count_colours, load_pages
from helpers import line_of, run_settings, write_audit

from bulkdelete.charts import MAX_POINTS, Throughput, throughput
from bulkdelete.errors import AuditError
from bulkdelete.htmlkit import CSP
from bulkdelete.outcome import Outcome
from bulkdelete.records import Location, Probed, RowOutcome, RunFinished, RunStarted, Sending
from bulkdelete.report_html import report_html, write_html_report
from bulkdelete.review import gather
from bulkdelete.summary import RunStatus

START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"


def at(seconds: float) -> str:
    """Return the audit timestamp ``seconds`` after START."""
    moment = START + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def started(run_id: str, t: float = 0, **settings: Any) -> dict[str, Any]:
    fields = {"target": "app-1", "permanent": True}
    record = RunStarted(
        ts=at(t),
        run_id=run_id,
        version="0.1.0",
        settings=run_settings(**fields | settings),
        repaired_torn_tail_bytes=0,
    )
    return line_of(record)


def row(
    run_id: str,
    uid: str,
    outcome: Outcome,
    t: float,
    *,
    code: str | None = None,
    attempts: int = 1,
    permanent: bool = True,
) -> dict[str, Any]:
    record = RowOutcome(
        ts=at(t),
        run_id=run_id,
        uid=uid,
        normalised_uid=uid,
        permanent=permanent,
        outcome=outcome,
        http_status=None,
        error_code=code,
        message=None,
        attempts=attempts,
        source=Location.parse(f"users.csv:{t}"),
        reason=None,
        note=None,
    )
    return line_of(record)


def finished(run_id: str, t: float, *, limit_per_minute: int | None) -> dict[str, Any]:
    record = RunFinished(
        ts=at(t),
        run_id=run_id,
        status=RunStatus.COMPLETED,
        totals={},
        rows=1,
        requests=1,
        duration_seconds=t,
        fatal_code=None,
        limit_per_minute=limit_per_minute,
    )
    return line_of(record)


def sending(run_id: str, uid: str, t: float) -> dict[str, Any]:
    record = Sending(
        ts=at(t), run_id=run_id, normalised_uid=uid, source=Location.parse("users.csv:9")
    )
    return line_of(record)


audit = write_audit


def steady_run(
    run_id: str, *, seconds: int, per_second: int, t0: float = 0
) -> list[dict[str, Any]]:
    """Return the lines of a run that deleted ``per_second`` UIDs each second."""
    return [started(run_id, t0, rate=per_second * 1.25)] + [
        row(run_id, f"{run_id}-{n}", Outcome.DELETED, t0 + n / per_second)
        for n in range(seconds * per_second)
    ]


def mixed_audit(path: Path) -> Path:
    """Write an audit with every section of the report filled, and hostile strings in it."""
    return audit(
        path,
        started("run-1", rate=10.0),
        *[row("run-1", f"user-{n}", Outcome.DELETED, n / 5) for n in range(40)],
        row("run-1", "gone-1", Outcome.NOT_FOUND, 8.1, code="ERR_UID_NOT_FOUND"),
        row("run-1", "stuck-1", Outcome.FAILED, 8.2, code="ERR_TOO_MANY_REQUESTS", attempts=6),
        row("run-1", "stuck-2", Outcome.FAILED, 8.3, code="ERR_TOO_MANY_REQUESTS", attempts=6),
        row("run-1", "odd-1", Outcome.FAILED, 8.4, code="ERR_<b>ODD</b>", attempts=1),
        sending("run-1", "in-flight-1", 8.5),
        sending("run-1", HOSTILE, 8.5),
    )


def test_html_shows_totals_failure_codes_and_every_unknown_uid(tmp_path: Path) -> None:
    """The page carries the outcome totals, each failure code with its count, and unknown UIDs."""
    path = mixed_audit(tmp_path / "audit.jsonl")
    html = report_html(gather([path], verify=False), throughput([path]))
    cards = {label: int(n) for n, label in re.findall(r"<b>([\d,]+)</b><span>([^<]+)", html)}
    assert cards == {
        "deleted": 40,
        "already deactivated": 0,
        "not found": 1,
        "failed": 3,
        "unknown state": 2,
        "invalid rows": 0,
        "duplicate rows": 0,
    }
    assert re.search(r"<b>0\+</b><span>never attempted", html)  # run-1 was killed
    codes = re.findall(r"<tr><td><code>(.*?)</code></td><td class=num>(\d+)</td>", html)
    assert codes == [("ERR_TOO_MANY_REQUESTS", "2"), ("ERR_&lt;b&gt;ODD&lt;/b&gt;", "1")]
    section = html.split("UIDs in unknown state")[1].split("</section>")[0]
    unknown = re.findall(r"<li>(.*?)</li>", section)
    assert unknown == ["&lt;script&gt;alert(1)&lt;/script&gt;", "in-flight-1"]
    assert "run-1" in html
    # The page's header says "(N killed)" whatever N is: the runs table must call run-1 killed.
    runs = re.findall(r'<tr><td><code>([^<]+)</code></td><td><span class="\w+">(\w+)</span>', html)
    assert runs == [("run-1", "killed")]


def test_already_deactivated_users_have_a_card_and_a_filter(tmp_path: Path) -> None:
    """A batched run's users found deactivated before: counted on a card, and filterable."""
    path = write_audit(
        tmp_path / "audit.jsonl",
        started("run-1"),
        row("run-1", "ann", Outcome.ALREADY_DEACTIVATED, 1, permanent=False),
        row("run-1", "bob", Outcome.DELETED, 2, permanent=False),
    )
    html = report_html(gather([path], verify=False), throughput([path]))
    cards = {label: int(n) for n, label in re.findall(r"<b>([\d,]+)</b><span>([^<]+)", html)}
    assert (cards["already deactivated"], cards["deleted"]) == (1, 1)
    assert 'id="f-already_deactivated"' in html
    assert re.search(r'<tr class="o-already_deactivated">.*?ann', html)


def test_confirmed_absence_and_soft_deactivations_are_on_the_page(tmp_path: Path) -> None:
    """A not-found the bulk probe confirmed absent is counted as such, not as 'may have been
    deactivated'; a user a soft run deactivated and a permanent run did not erase is named with
    that run."""
    probed = Probed(ts=at(2), run_id="hard", absent=("ann",), deactivated=("bob",))
    path = write_audit(
        tmp_path / "audit.jsonl",
        started("soft", permanent=False),
        row("soft", "bob", Outcome.DELETED, 1, permanent=False),
        started("hard", 2),
        line_of(probed),
        row("hard", "ann", Outcome.NOT_FOUND, 3, code="ERR_UID_NOT_FOUND"),
        row("hard", "bob", Outcome.FAILED, 4, code="DEACTIVATED_NOT_ERASED"),
    )
    html = report_html(gather([path], verify=False), throughput([path]))
    assert "confirmed absent by its bulk probe (not deactivated users): 1." in html
    assert "Not found: may have been" not in html
    assert "<li>bob: deactivated by run <code>soft</code></li>" in html


def test_hostile_uid_renders_only_as_escaped_text(tmp_path: Path) -> None:
    """A UID, code or target carrying markup appears escaped and never as a tag."""
    path = audit(
        tmp_path / "audit.jsonl",
        started(HOSTILE, target=f'"><img src=x onerror=alert(1)>{HOSTILE}'),
        row(HOSTILE, HOSTILE, Outcome.FAILED, 1, code=HOSTILE),
        row(HOSTILE, f"nf{HOSTILE}", Outcome.NOT_FOUND, 2),
        sending(HOSTILE, f"u{HOSTILE}", 3),
    )
    html = report_html(gather([path], verify=False), throughput([path]))
    assert "<script" not in html
    assert "<img" not in html
    assert "onerror=alert(1)>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6


def test_page_loads_nothing_from_outside(tmp_path: Path) -> None:
    """No src or href points anywhere but data:, and the CSP forbids everything else."""
    path = mixed_audit(tmp_path / "audit.jsonl")
    html = report_html(gather([path], verify=False), throughput([path]))
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html, flags=re.IGNORECASE)
    assert links == ["data:,"]
    assert "url(" not in html
    assert "@import" not in html
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert "<script" not in html


def test_polyline_has_one_point_per_bucket(tmp_path: Path) -> None:
    """Each chart's polyline has exactly as many points as its run has buckets."""
    path = audit(
        tmp_path / "audit.jsonl",
        *steady_run("a", seconds=30, per_second=4),
        *steady_run("b", seconds=500, per_second=1, t0=4000),
    )
    chart = throughput([path])
    html = report_html(gather([path], verify=False), chart)
    polylines = re.findall(r'<polyline points="([^"]+)"', html)
    assert [len(points.split()) for points in polylines] == [len(r.counts) for r in chart.runs]
    assert [len(r.counts) for r in chart.runs] == [30, 250]


def test_buckets_count_answered_uids_per_second(tmp_path: Path) -> None:
    """Rows sent at least once count in their bucket; invalid, duplicate and unsent rows don't."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r", rate=5),
        row("r", "a", Outcome.DELETED, 0.2),
        row("r", "b", Outcome.NOT_FOUND, 0.7),
        row("r", "c", Outcome.FAILED, 1.5, attempts=3),
        row("r", "c", Outcome.DUPLICATE, 1.6, attempts=0),
        row("r", "bad uid", Outcome.INVALID, 1.7, attempts=0),
        row("r", "d", Outcome.FAILED, 2.1, attempts=0),  # halted before its first request
        sending("r", "e", 4.5),
    )
    (run,) = throughput([path], bucket_seconds=1).runs
    assert (run.run_id, run.started, run.bucket_seconds) == ("r", at(0), 1.0)
    assert run.counts == (2, 1, 0, 0, 0)  # the sending line stretches the run to its end
    assert run.per_second() == (2.0, 1.0, 0.0, 0.0, 0.0)
    assert run.rate_limit == 5.0


def test_long_run_keeps_at_most_max_points(tmp_path: Path) -> None:
    """A 3-hour run is merged into at most MAX_POINTS buckets, losing no UID."""
    path = audit(tmp_path / "audit.jsonl", *steady_run("long", seconds=3 * 3600, per_second=1))
    (run,) = throughput([path]).runs
    assert MAX_POINTS == 300
    assert MAX_POINTS // 5 <= len(run.counts) <= MAX_POINTS
    assert sum(run.counts) == 3 * 3600
    assert run.bucket_seconds == 60.0
    (fine,) = throughput([path], bucket_seconds=0.5).runs
    assert len(fine.counts) <= MAX_POINTS
    assert sum(fine.counts) == 3 * 3600


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(1, 0.1), (3, 0.1), (5, 0.2), (30, 1.0), (250, 1.0), (400, 2.0)],
)
def test_automatic_buckets_are_a_second_wide_unless_the_run_is_short(
    tmp_path: Path, seconds: int, bucket: float
) -> None:
    """Buckets stay under 1 s only while a run would otherwise have under 20 points."""
    path = audit(tmp_path / "audit.jsonl", *steady_run("r", seconds=seconds, per_second=10))
    (run,) = throughput([path]).runs
    assert run.bucket_seconds == bucket
    assert sum(run.counts) == seconds * 10


@pytest.mark.parametrize(
    ("settings", "learned", "limit"),
    [
        ({"rate": 12.5}, None, 12.5),
        ({"rate": 12.5}, 600, 12.5),
        ({"rate": "auto"}, 600, 10.0),
        ({"rate": "auto"}, None, None),
        ({}, None, None),
        ({"rate": -1.0}, None, None),
        ({"rate": 0}, None, None),
    ],
)
def test_rate_limit_comes_from_run_settings(
    tmp_path: Path, settings: dict[str, Any], learned: int | None, limit: float | None
) -> None:
    """The ceiling is settings.rate, or under "auto" the limit_per_minute/60 its run_finished
    says it learned, else there is none."""
    lines = [started("r", **settings), row("r", "a", Outcome.DELETED, 1)]
    if learned is not None:
        lines.append(finished("r", 2, limit_per_minute=learned))
    path = audit(tmp_path / "audit.jsonl", *lines)
    chart = throughput([path])
    assert chart.runs[0].rate_limit == limit
    html = report_html(gather([path], verify=False), chart)
    assert ('stroke-dasharray="8 5"' in html) is (limit is not None)
    # The caption speaks of a dashed line only where one is drawn.
    assert ("The dashed line is the run's ceiling" in html) is (limit is not None)


def test_not_found_warning_appears_only_for_permanent_runs(tmp_path: Path) -> None:
    """UIDs not found by a permanent run are listed with the may-be-deactivated warning."""
    soft = audit(
        tmp_path / "soft.jsonl",
        started("s", permanent=False),
        row("s", "ghost", Outcome.NOT_FOUND, 1, permanent=False),
    )
    hard = audit(tmp_path / "hard.jsonl", started("h"), row("h", "ghost", Outcome.NOT_FOUND, 1))
    warning = "Not found: may have been deactivated, not erased."
    assert warning not in report_html(gather([soft], verify=False), throughput([soft]))
    html = report_html(gather([hard], verify=False), throughput([hard]))
    assert warning in html
    assert "<li>ghost</li>" in html.split(warning)[1]


def test_run_without_answers_gets_no_chart(tmp_path: Path) -> None:
    """A run that sent nothing says so instead of drawing an empty chart."""
    path = audit(tmp_path / "audit.jsonl", started("r"), sending("r", "a", 1))
    html = report_html(gather([path], verify=False), throughput([path]))
    assert "<polyline" not in html
    assert "nothing to chart" in html
    assert report_html(gather([path], verify=False), Throughput(runs=())).count("<svg") == 0


def test_write_html_report_writes_utf8(tmp_path: Path) -> None:
    """The file is UTF-8 and names the audit it was built from."""
    path = audit(tmp_path / "audit.jsonl", started("r"), sending("r", "zoë-ünïcode", 1))
    out = tmp_path / "report.html"
    write_html_report([path], out)
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<li>zoë-ünïcode</li>" in html
    assert f"<code>{path}</code>" in html


def test_bad_timestamp_raises_audit_error_naming_the_line(tmp_path: Path) -> None:
    """A line whose ts is not a timestamp is refused with its file and line number."""
    path = audit(tmp_path / "audit.jsonl", started("r"), sending("r", "a", 1) | {"ts": "soon"})
    with pytest.raises(AuditError) as caught:
        throughput([path])
    assert (caught.value.path, caught.value.line) == (str(path), 2)


def test_an_event_without_a_run_is_not_charted(tmp_path: Path) -> None:
    """A later version's event that names no run (and has no ts) stretches no run's chart."""
    path = audit(
        tmp_path / "audit.jsonl",
        started("r"),
        row("r", "a", Outcome.DELETED, 0.5),
        {"event": "heartbeat"},
    )
    assert [run.counts for run in throughput([path], bucket_seconds=1).runs] == [(1,)]


@pytest.fixture(scope="module")
def browser_pages(tmp_path_factory: pytest.TempPathFactory) -> list[PageLoad]:
    """Load a real report and a deliberately broken page in one headless Chromium."""
    root = tmp_path_factory.mktemp("browser")
    path = mixed_audit(root / "audit.jsonl")
    write_html_report([path], root / "report.html")
    (root / "broken.html").write_text(
        f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<img src="https://example.invalid/x.png"><script>console.error("boom")</script>',
        encoding="utf-8",
    )
    (root / "noisy.html").write_text(
        "<!DOCTYPE html><script>console.error('boom'); throw new Error('bad')</script>",
        encoding="utf-8",
    )
    urls = [(root / name).as_uri() for name in ("report.html", "broken.html", "noisy.html")]
    return load_pages(urls, profile=root / "profile", full_page=True)


def test_report_loads_in_chromium_without_errors_and_shows_the_chart(
    browser_pages: list[PageLoad], tmp_path: Path
) -> None:
    """Chromium logs no error, exception or CSP violation, and the chart's lines are on screen."""
    report = browser_pages[0]
    (tmp_path / "report.png").write_bytes(report.screenshot)  # kept for a look when this fails
    assert report.errors == ()
    line, limit = count_colours(report.screenshot, "#1f77b4", "#d62728", tolerance=8)
    assert line > 1000, f"throughput line pixels: {line}, see {tmp_path / 'report.png'}"
    assert limit > 300, f"rate-limit line pixels: {limit}, see {tmp_path / 'report.png'}"


def test_browser_helper_reports_csp_violations_console_errors_and_exceptions(
    browser_pages: list[PageLoad],
) -> None:
    """The error capture is not vacuous: a broken page's every kind of error is reported."""
    broken, noisy = browser_pages[1].errors, browser_pages[2].errors
    assert any("Content Security Policy" in error and "img-src" in error for error in broken)
    assert any("Content Security Policy" in error and "inline" in error for error in broken)
    assert "console.error: boom" in noisy
    assert any(error.startswith("exception: Error: bad") for error in noisy)
