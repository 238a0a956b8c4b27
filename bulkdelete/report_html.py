"""Render audits as one self-contained HTML page that a privacy reviewer reads, prints and signs.

The page says who ran what, on which input files (names, SHA-256, rows), when, with what outcome
for every row (rows never attempted included), what the read-back found, and what ``verify``
says of the chain, with each audit's head. It has a per-reference view and a table of every UID,
filtered by outcome without a script: a radio button per outcome, and a CSS rule that hides the
other rows while it is checked (the page's Content-Security-Policy allows no script). Printed,
the filter is left out and every row shows; so do the lists (nothing scrolls in a box); the
throughput charts, screen-only, are left out too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bulkdelete import __version__, privatefile
from bulkdelete.charts import Throughput, chart_svg, throughput
from bulkdelete.htmlkit import e, page, table, when
from bulkdelete.outcome import Outcome
from bulkdelete.records import InputFile
from bulkdelete.references import UNKNOWN, Reference, shown
from bulkdelete.report import KILLED, Report, RunInfo, UidState
from bulkdelete.review import Review, gather
from bulkdelete.verification import verification_text

TABLE_ROWS: Final = 10_000  # UIDs the per-UID table lists, those that need a look first
_ONE_LINE: Final = 40  # characters of a UID kept on one line
_RUN_HEADER: Final = (
    "run id|status|operator|started|finished|duration|requests|avg rate|permanent|target"
)
_ROWS_HEADER: Final = "run id|input rows|audited|skipped|unsent|no answer|unread"
_UID_HEADER: Final = "UID|latest outcome|when|run|error code|read back|reference"
# The per-UID table's filters, in order: the class a row gets, and the label of its button.
_FILTERS: Final = (
    (Outcome.FAILED.value, "failed"),
    (UNKNOWN, "unknown state"),
    (Outcome.NOT_FOUND.value, "not found"),
    (Outcome.DELETED.value, "deleted"),
    (Outcome.ALREADY_DEACTIVATED.value, "already deactivated"),
)
_ORDER: Final = {name: n for n, (name, _) in enumerate(_FILTERS)}
_NONE: Final = '<p class="muted">None.</p>'


def _operator(run: RunInfo) -> str:
    return f"{run.operator.user}@{run.operator.host}" if run.operator else "library call"


def _run_row(run: RunInfo) -> list[str]:
    status = e(run.status) + (f" <code>{e(run.fatal_code)}</code>" if run.fatal_code else "")
    if run.status != "completed":
        status = f'<span class="bad">{status}</span>'
    finished = when(run.finished) if run.finished else '<span class="muted">never</span>'
    permanent = "yes" if run.permanent else '<span class="bad">no</span>'
    return [f"<code>{e(run.run_id)}</code>", status, e(_operator(run)), when(run.started),
            finished, f"{run.duration_seconds:.1f} s", f"{run.requests:,}", f"{run.rate:.1f}/s",
            permanent, e(run.target)]  # fmt: skip


def _rows_row(run: RunInfo) -> list[str]:
    """What one run did with its input's rows: each read row is on one of these columns."""
    audited = sum(run.totals.values())
    left = (run.skipped, run.unsent, run.unanswered, run.unread)
    cells = ["?" if n is None else f"{n:,}" for n in left]
    total = "?" if None in left else f"{audited + sum(n or 0 for n in left):,}"
    return [f"<code>{e(run.run_id)}</code>", total, f"{audited:,}", *cells]


def _inputs(runs: Sequence[RunInfo]) -> str:
    """Every input file the runs read: its name, SHA-256, rows and bytes, and which runs."""
    seen: dict[tuple[str, str], list[str]] = {}
    facts: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        for read in run.inputs:
            if isinstance(read, InputFile):  # a stream's facts are in its input_read line
                key = (read.name, read.sha256)
                size = "?" if read.bytes is None else f"{read.bytes:,}"
                sha = f"<code>{e(read.sha256)}</code>"
                facts[key] = [e(read.name), sha, f"{read.rows:,}", size, e(read.column or "-")]
                seen.setdefault(key, []).append(run.run_id)
        for stream in run.streams_read:
            key = (stream.name, stream.sha256)
            part = "" if stream.complete else " (read in part)"
            facts[key] = [e(stream.name) + " (stdin)", f"<code>{e(stream.sha256)}</code>{part}",
                          f"{stream.rows:,}", f"{stream.bytes:,}", "-"]  # fmt: skip
            seen.setdefault(key, []).append(run.run_id)
    if not facts:
        return '<p class="muted">No run recorded its input files (library runs do not).</p>'
    rows = [
        [*facts[key], ", ".join(f"<code>{e(r)}</code>" for r in ids)] for key, ids in seen.items()
    ]
    header = ["file", "SHA-256", "rows", "bytes", "column", "read by"]
    return table(header, rows, numeric={2, 3})


def _facts(review: Review, chart: Throughput) -> str:
    """The header's facts: audits, operators, time range, kind, and verify's verdict."""
    runs = review.report.runs
    operators = sorted({_operator(run) for run in runs}) or ["none"]
    ends = [run.finished or run.started for run in runs]
    span = f"{when(min(r.started for r in runs))} to {when(max(ends))}" if runs else "no runs"
    kinds = sorted({"PERMANENT erasure" if r.permanent else "deactivation" for r in runs})
    items = [
        ("Audits", ", ".join(f"<code>{e(p)}</code>" for p in chart.sources or review.paths)),
        ("Operators", ", ".join(e(name) for name in operators)),
        ("Time range", span),
        ("Kind", e(", ".join(kinds) or "none")),
        ("Targets", e(", ".join(sorted({r.target for r in runs})) or "none")),
        ("Verify", _verdict(review)),
    ]
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _verdict(review: Review) -> str:
    v = review.verification
    if v is None:
        return '<span class="muted">not run</span>'
    first, *rest = verification_text(v).splitlines()
    cls = "good" if v.ok else "bad"
    details = "".join(f"<li>{e(line)}</li>" for line in rest)
    return f'<strong class="{cls}">{e(first)}</strong><ul class="plain">{details}</ul>'


def _cards(review: Review) -> str:
    report = review.report
    never, more = review.never_attempted
    unsure = bool(report.not_found_in_permanent)
    cards = (
        ("deleted", f"{report.totals.get(Outcome.DELETED, 0):,}", False),
        ("already deactivated", f"{report.totals.get(Outcome.ALREADY_DEACTIVATED, 0):,}", False),
        ("not found", f"{report.totals.get(Outcome.NOT_FOUND, 0):,}", unsure),
        ("failed", f"{report.totals.get(Outcome.FAILED, 0):,}", True),
        ("unknown state", f"{len(report.unknown):,}", True),
        ("invalid rows", f"{report.totals.get(Outcome.INVALID, 0):,}", False),
        ("duplicate rows", f"{report.totals.get(Outcome.DUPLICATE, 0):,}", False),
        ("never attempted", f"{never:,}{'+' if more else ''}", True),
    )  # fmt: skip
    return "".join(
        f'<div class="card{" bad" if bad and n not in {"0", "0+"} else ""}"><b>{n}</b>'
        f"<span>{label}</span></div>"
        for label, n, bad in cards
    )


def _failures(report: Report) -> str:
    failed = sum(report.failures_by_code.values())
    rows = [
        [f"<code>{e(code)}</code>", f"{count:,}", f"{count / failed:.0%}"]
        for code, count in report.failures_by_code.items()
    ]
    return table(["error code", "failed UIDs", "share"], rows, numeric={1, 2})


def _uid_list(uids: Sequence[str]) -> str:
    items = "".join(f"<li>{e(uid)}</li>" for uid in uids)
    return f'<ol class="uids">{items}</ol>'


def _references(refs: Sequence[Reference]) -> str:
    if not refs:
        return (
            '<p class="muted">No row carries a request reference '
            "(<code>delete --ref-column</code>).</p>"
        )
    header = [
        "reference",
        "UIDs",
        "deleted",
        "not found",
        "failed",
        "unknown",
        "invalid",
        "complete",
    ]
    rows = []
    for ref in refs:
        counts = ref.counts
        state = (
            "yes" if ref.complete else f'<span class="bad">no: {e("; ".join(ref.problems))}</span>'
        )
        figures = [f"{counts[k]:,}" for k in ("deleted", "not_found", "failed", UNKNOWN, "invalid")]
        rows.append([e(shown(ref.ref)), f"{len(ref.uids):,}", *figures, state])
    return table(header, rows, numeric={1, 2, 3, 4, 5, 6})


def _per_uid(review: Review) -> str:
    """Every UID with its latest state, those that need a look first, filterable by outcome."""
    report = review.report
    refs: dict[str, list[str]] = {}
    for ref in review.refs:
        for entry in ref.uids:
            refs.setdefault(entry.uid, []).append(shown(ref.ref))
    states: list[tuple[str, str, UidState | None]] = [
        (s.uid, s.outcome.value, s) for s in report.uids.values() if s.uid not in report.unknown
    ]
    states += [(uid, UNKNOWN, None) for uid in report.unknown]
    states.sort(key=lambda item: (_ORDER.get(item[1], len(_ORDER)), item[0]))
    counts = Counter(outcome for _, outcome, _ in states)
    radios = [
        '<input type="radio" name="show" id="f-all" checked>'
        f'<label for="f-all">all ({len(states):,})</label>'
    ]
    radios += [
        f'<input type="radio" name="show" id="f-{name}"><label for="f-{name}">{label} '
        f"({counts[name]:,})</label>"
        for name, label in _FILTERS
    ]
    rows = []
    for uid, outcome, state in states[:TABLE_ROWS]:
        # Kept on one line where they fit, so that a printed UID reads (and is found) whole.
        short = ' class="nw"' if len(uid) <= _ONE_LINE else ""
        cells = [f"<td{short}>{e(uid)}</td>", f'<td class="nw">{e(outcome)}</td>']
        if state is None:
            cells.append('<td colspan="3" class="muted">sent, no answer recorded</td>')
        else:
            cells += [f'<td class="nw">{when(state.ts)}</td>',
                      f"<td><code>{e(state.run_id)}</code></td>",
                      f'<td class="nw">{e(state.error_code or "")}</td>']  # fmt: skip
        cells += [f"<td>{e(report.read_back_of.get(uid, ''))}</td>",
                  f"<td>{e(', '.join(refs.get(uid, [])))}</td>"]  # fmt: skip
        rows.append(f'<tr class="o-{outcome}">{"".join(cells)}</tr>')
    cut = ""
    if len(states) > TABLE_ROWS:
        cut = (
            f'<p class="muted">The first {TABLE_ROWS:,} of {len(states):,} UIDs, those that '
            "need a look first; the audit lists every one (<code>report --by-ref</code> lists "
            "them by reference).</p>"
        )
    head = "".join(f"<th>{h}</th>" for h in _UID_HEADER.split("|"))
    return (
        f'<div class="filter"><span class="screen-only">Show: </span>{"".join(radios)}'
        f'<table class="per-uid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        f"</tbody></table></div>{cut}"
    )


def _charts(chart: Throughput) -> str:
    drawn = "".join(
        f"<h3>Run <code>{e(run.run_id)}</code>, started {when(run.started)}</h3>{chart_svg(run)}"
        for run in chart.runs
    )
    ceiling = (
        " The dashed line is the run's ceiling on requests sent per second (its --rate, or the "
        "limit the server advertised); answers can bunch up above it briefly."
        if any(run.rate_limit is not None for run in chart.runs)
        else ""
    )
    return (
        '<section class="screen-only"><h2>Throughput over time</h2><p class="muted">Each point '
        "counts the UIDs whose final answer was written in that interval (retries are extra "
        f"requests, not counted).{ceiling} Not printed.</p>{drawn or _NONE}</section>"
    )


def report_html(review: Review, chart: Throughput) -> str:
    """Return the reviewer's report as one HTML5 document with inline CSS and SVG, no scripts.

    A ``review`` gathered with ``verify`` shows the verdict; without, the page says it was not
    run.
    """
    report = review.report
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    killed = sum(run.status == KILLED for run in report.runs)
    runs = table(_RUN_HEADER.split("|"), [_run_row(r) for r in report.runs], numeric={6, 7})
    accounting = table(_ROWS_HEADER.split("|"), [_rows_row(r) for r in report.runs],
                       numeric={1, 2, 3, 4, 5, 6})  # fmt: skip
    unknown = _NONE
    if report.unknown:
        unknown = (
            "<p>Sent when a run was killed or stopped waiting, with no outcome since: nobody "
            "knows whether the server deleted them. A run with <code>--resume</code> settles "
            "them.</p>" + _uid_list(report.unknown)
        )
    unsure = len(report.not_found_in_permanent)
    not_found = (
        f'<p class="bad">Not found by a permanent run: {unsure:,}. These UIDs may have been '
        "deactivated, not erased (listed below).</p>"
        if unsure
        else ""
    )
    if report.absent:
        not_found += (
            f"<p>Not found by a permanent run and confirmed absent by its bulk probe (not "
            f"deactivated users): {len(report.absent):,}.</p>"
        )
    read_back = " · ".join(f"{e(k)} {n:,}" for k, n in sorted(report.read_back.items()))
    left = "".join(
        f"<li>run <code>{e(run.run_id)}</code> ({e(run.status)}) stopped with rows left, and no "
        "later run finished it</li>"
        for run in review.unfinished
    )
    body = f"""<header><h1>bulkdelete audit report</h1>
<p>Generated {generated} by bulkdelete {e(__version__)}: runs: {len(report.runs)} ({killed} killed);
UIDs with an outcome: {len(report.uids):,}.</p>{_facts(review, chart)}</header>
<section><h2>Input files</h2>{_inputs(report.runs)}</section>
<section class="runs"><h2>Runs</h2>{runs}<h3>Rows of each run</h3><p class="muted">Each input
row a run read is audited, skipped (settled by an earlier run), unsent (read when the run
stopped), or without an answer (its fate unknown); unread rows were never read.</p>{accounting}
{f'<ul class="bad">{left}</ul>' if left else ""}</section>
<section><h2>Latest outcome per UID</h2><div class="cards">{_cards(review)}</div>
{not_found}<p>Read back (<code>bulkdelete check</code>, latest per UID): {read_back or "none"}.
'gone' means the API no longer returns the user: removed, or only deactivated.</p></section>
<section><h2>Requests by reference ({len(review.refs):,})</h2>{_references(review.refs)}</section>
<section><h2>Every UID</h2>{_per_uid(review)}</section>
<section><h2>Failures by error code</h2>{_failures(report) if report.failures_by_code else _NONE}
</section>
<section><h2>UIDs in unknown state ({len(report.unknown):,})</h2>{unknown}</section>
{_not_found(report)}{_charts(chart)}
<section class="sign"><h2>Review</h2><p>Reviewed by: ______________________ Date:
______________ Signature: ______________________</p></section>"""
    return page("bulkdelete audit report", body, css=_CSS)


def _deactivated_by(report: Report) -> str:
    if not report.deactivated_by:
        return ""
    items = "".join(
        f"<li>{e(uid)}: deactivated by run <code>{e(run)}</code></li>"
        for uid, run in report.deactivated_by.items()
    )
    return (
        '<section class="warning"><h2>Deactivated by an earlier soft run, not erased '
        f"({len(report.deactivated_by):,})</h2><p>A soft run of these audits deactivated them, "
        "and no permanent run erased them since: <code>delete --permanent "
        f'--erase-deactivated</code> does.</p><ol class="uids">{items}</ol></section>'
    )


def _not_found(report: Report) -> str:
    if not report.not_found_in_permanent:
        return _deactivated_by(report)
    return _deactivated_by(report) + (
        '<section class="warning"><h2>Not found by a permanent run '
        f"({len(report.not_found_in_permanent):,})</h2><p><strong>Not found: may have been "
        "deactivated, not erased.</strong> CometChat answers not-found for deactivated users too, "
        f"so these UIDs may still exist, deactivated.</p>{_uid_list(report.not_found_in_permanent)}"
        "</section>"
    )


def write_html_report(paths: Sequence[Path], out: Path, *, review: Review | None = None) -> None:
    """Read the audits at ``paths`` and write their HTML report to ``out`` as UTF-8, mode 0600.

    ``review`` spares a second reading when the caller gathered it from the same paths (with
    ``verify``, the page shows the verdict). Raises ``AuditError`` as ``build_report`` does, and
    ``OSError`` when ``out`` can't be written.
    """
    review = review or gather(paths, verify=True)
    document = report_html(review, throughput(paths))
    privatefile.write_bytes(out, document.encode("utf-8"))


_FILTER_CSS: Final = ",".join(
    f"#f-{name}:checked~table tbody tr:not(.o-{name})" for name, _ in _FILTERS
)
_CSS: Final = (
    _FILTER_CSS
    + """{display:none}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:12px 0 0}
.facts dt{color:#555}.facts dd{margin:0}.good{color:#17663a}ul.plain{margin:2px 0;padding-left:18px}
.filter input{margin:0 2px 0 10px}.filter label{cursor:pointer}
.filter input:checked+label{font-weight:600;text-decoration:underline}
.filter table{margin-top:8px}.sign p{line-height:2.4}
.runs td:nth-child(n+4):nth-child(-n+8){white-space:nowrap}
"""
)
