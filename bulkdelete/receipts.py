"""One receipt per request reference: a JSON document for machines and a page a reviewer prints.

A receipt names the reference; whether it is complete and, if not, what stands in the way
(see ``references``); every UID of it with its latest outcome, the time and the run; its
invalid rows; the runs that wrote its lines (who ran them, when, where, which kind); each audit
those runs are in, by its head as ``HASH:LINES`` (``verify --expect-head`` checks it later);
and ``verify``'s verdict on the audits. With ``--audit-uid-hash`` it carries what the audit
carries and nothing more: UIDs are the audit's pseudonyms; no input is read.

Each reference gets ``<stem>.json`` and ``<stem>.html`` in the directory: the stem is the
reference's letters, digits, ``.``, ``-`` and ``_`` (at most 60), then the first 12 hex digits
of its SHA-256, so that no two references share a file and none can name another path. The files
are 0600 (they name UIDs); the directory is made 0700 when the receipts create it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

from bulkdelete import __version__, privatefile
from bulkdelete.htmlkit import e, page, table, when
from bulkdelete.references import Reference, reference_json, run_json, shown
from bulkdelete.report import RunInfo
from bulkdelete.review import Review
from bulkdelete.verification import Head, verification_text

DIRECTORY_MODE: Final = 0o700
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_STEM_CHARS: Final = 60
_UID_HEADER: Final = "UID|latest outcome|when|run|error code|read back|rows"
_ONE_LINE: Final = frozenset({0, 1, 2, 4})  # UID, outcome, time, code: each read whole


def stem(ref: str) -> str:
    """Return the file name, without suffix, of a reference's receipt: safe for any reference."""
    readable = _UNSAFE.sub("_", ref).strip("._")[:_STEM_CHARS] or "empty"
    return f"{readable}-{hashlib.sha256(ref.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def _runs(reference: Reference, review: Review) -> list[RunInfo]:
    named = set(reference.runs)
    return [run for run in review.report.runs if run.run_id in named]


def _heads(runs: Sequence[RunInfo], review: Review) -> list[Head]:
    """Return the heads of the audits that hold the reference's runs."""
    audits = {run.audit for run in runs}
    heads = review.verification.heads if review.verification else ()
    return [head for head in heads if head.path in audits]


def receipt_json(reference: Reference, review: Review, *, generated: str) -> bytes:
    """Return the receipt of one reference as a JSON document."""
    runs = _runs(reference, review)
    verification = review.verification
    document = {
        "receipt": "bulkdelete request receipt",
        "version": __version__,
        "generated": generated,
        **reference_json(reference),
        "runs": [run_json(run) for run in runs],
        "audits": [
            {"path": head.path, "head": head.hash, "lines": head.lines, "expect_head": str(head)}
            for head in _heads(runs, review)
        ],
        "verify": None
        if verification is None
        else {
            "ok": verification.ok,
            "verdict": verification_text(verification).splitlines()[0],
            "inputs_checked": verification.rows_checked > 0,
        },
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def receipt_html(reference: Reference, review: Review, *, generated: str) -> str:
    """Return the receipt of one reference as a printable HTML page (no scripts, loads nothing)."""
    runs = _runs(reference, review)
    if reference.complete:
        state = '<p class="banner good">COMPLETE: every UID deleted or not found.</p>'
    else:
        problems = "".join(f"<li>{e(problem)}</li>" for problem in reference.problems)
        state = f'<div class="banner bad">INCOMPLETE<ul>{problems}</ul></div>'
    run_rows = [
        [
            f"<code>{e(run.run_id)}</code>",
            e(run.status),
            e(f"{run.operator.user}@{run.operator.host}" if run.operator else "library call"),
            when(run.started),
            when(run.finished) if run.finished else "never",
            "PERMANENT erasure" if run.permanent else "deactivation",
            e(run.target),
        ]
        for run in runs
    ]
    heads = "".join(
        f"<li><code>{e(head.path)}</code>: <code>{e(head)}</code></li>"
        if head.hash
        else f"<li><code>{e(head.path)}</code>: unknown (keyed chain, no key given)</li>"
        for head in _heads(runs, review)
    )
    verdict = (
        e(verification_text(review.verification).splitlines()[0])
        if review.verification
        else "not run"
    )
    uid_rows = [
        [e(u.uid), e(u.outcome), when(u.ts) if u.ts else "-", f"<code>{e(u.run_id)}</code>",
         e(u.error_code or ""), e(u.read_back or ""), e(", ".join(u.sources))]
        for u in reference.uids
    ]  # fmt: skip
    invalid = ""
    if reference.invalid:
        rows = [[e(r.source), e(r.value), e(r.reason or "")] for r in reference.invalid]
        invalid = "<h2>Invalid rows, never sent</h2>" + table(
            ["row", "value", "reason"], rows, numeric=set()
        )
    caveat = ""
    if reference.not_found_in_permanent:
        caveat = (
            f'<p class="bad">Not found by a permanent run: {reference.not_found_in_permanent}. '
            "CometChat says so for deactivated users too, so these may be deactivated, not "
            "erased.</p>"
        )
    body = f"""<header><h1>Request receipt: {e(shown(reference.ref))}</h1>
<p>Generated {e(generated)} by bulkdelete {e(__version__)} from the audits below.</p></header>
{state}<section><dl class="facts">
<dt>Reference</dt><dd>{e(shown(reference.ref))}</dd>
<dt>Period</dt><dd>{when(reference.first_ts)} to {when(reference.last_ts)}</dd>
<dt>UIDs</dt><dd>{len(reference.uids):,} ({e(_counts(reference))})</dd>
<dt>Audit heads</dt><dd><ul class="plain">{heads or "<li>not verified</li>"}</ul></dd>
<dt>Verify</dt><dd>{verdict}</dd></dl>{caveat}</section>
<section><h2>Runs</h2>{table(["run id", "status", "operator", "started", "finished", "kind",
                              "target"], run_rows, numeric=set())}</section>
<section><h2>UIDs</h2>{table(_UID_HEADER.split("|"), uid_rows, numeric=set(),
                              nowrap=_ONE_LINE)}{invalid}</section>
<section class="sign"><h2>Review</h2><p>Reviewed by: ______________________ Date:
______________ Signature: ______________________</p></section>"""  # fmt: skip
    return page(f"Request receipt: {shown(reference.ref)}", body, css=_CSS)


def _counts(reference: Reference) -> str:
    return ", ".join(f"{name} {n}" for name, n in reference.counts.items() if n)


def write_receipts(review: Review, directory: Path) -> list[Path]:
    """Write one JSON and one HTML receipt per reference into ``directory``; return the paths.

    Makes the directory (mode 0700) when it is missing. Raises ``OSError`` when it cannot be
    made or a receipt cannot be written.
    """
    if not directory.is_dir():
        directory.mkdir(mode=DIRECTORY_MODE)
        directory.chmod(DIRECTORY_MODE)  # mkdir's mode is narrowed by the umask, never widened
    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    written = []
    for reference in review.refs:
        name = stem(reference.ref)
        for suffix, data in (
            (".json", receipt_json(reference, review, generated=generated)),
            (".html", receipt_html(reference, review, generated=generated).encode("utf-8")),
        ):
            path = directory / (name + suffix)
            privatefile.write_bytes(path, data)
            written.append(path)
    return written


_CSS: Final = """
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
.facts dt{color:#555}.facts dd{margin:0}ul.plain{margin:0;padding-left:18px}
.banner{font-size:18px;font-weight:600;padding:10px 16px;border-radius:6px;margin:16px 0}
.banner.good{color:#17663a;background:#eef8f1;border:1px solid #9fd3b1}
.banner.bad{background:#fdf0f0;border:1px solid #e5a0a0}.sign p{line-height:2.4}
"""
