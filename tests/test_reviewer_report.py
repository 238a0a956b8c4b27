"""The reviewer's HTML report of real runs, in headless Chromium and printed to PDF.

The audit holds a permanent run with invalid rows, duplicate rows, not-found UIDs and request
references, stopped by SIGTERM partway (so rows were never attempted), then a read-back: all
written by the real CLI against the fake server. ``make evidence`` keeps the screenshot and the
PDF under docs/evidence/ (BULKDELETE_EVIDENCE_DIR); otherwise they go to a temporary directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from browser import PageLoad, load_pages
from helpers import audit_lines, cli_env, run_cli, wait_for_outcomes

from bulkdelete.audit import link
from bulkdelete.receipts import stem

ON_SERVER = [f"member-{n:03d}" for n in range(60) if n % 5 != 4]  # each ticket's last is not
TICKETS = 12
STOP_AFTER = 40  # outcome lines before the SIGTERM: past the first probe (4 s at 10/s)


def _input(path: Path) -> Path:
    """Five rows per ticket, the last not on the server; one invalid and one duplicate in DSR-02."""
    rows = ["ticket,uid,requested_at"]
    for n in range(TICKETS * 5):
        ticket = f"DSR-{n // 5 + 1:02d}"
        uid = f"member-{n:03d}"
        if n == 6:
            uid = "=HYPERLINK(x)"
        elif n == 7:
            uid = "MEMBER-005"
        rows.append(f"{ticket},{uid},2026-11-{n // 5 + 1:02d}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@dataclasses.dataclass(frozen=True)
class Reviewed:
    audit: Path
    html: Path
    page: PageLoad
    pdf_text: str
    pdf_pages: int
    uids: list[str]  # every UID the per-UID table should list
    receipt: PageLoad  # DSR-02's receipt page


# JavaScript probes, evaluated on screen and again under the print media (see browser.py).
_VISIBLE_ROWS = (
    "[...document.querySelectorAll('table.per-uid tbody tr')]"
    ".filter(r => getComputedStyle(r).display !== 'none').length"
)
PROBES = (
    _VISIBLE_ROWS,
    # Filter to deleted UIDs; the filter stays set for the print probes and the PDF after.
    "(() => { const f = document.getElementById('f-deleted'); if (f) f.checked = true; "
    f"return {_VISIBLE_ROWS}; }})()",
    "document.querySelectorAll('table.per-uid tbody tr.o-deleted').length",
    # Anything that scrolls inside a box would be cut off on paper.
    "[...document.querySelectorAll('*')].filter(el => ['auto', 'scroll']"
    ".includes(getComputedStyle(el).overflowY) && el.scrollHeight > el.clientHeight + 1).length",
    "[...document.querySelectorAll('svg.chart')].filter(el => el.getClientRects().length).length",
    "[...document.querySelectorAll('.filter input')]"
    ".filter(el => el.getClientRects().length).length",
)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Reviewed:
    """Run, stop, read back and report as a person would; load the page; print it."""
    root = tmp_path_factory.mktemp("reviewer")
    users = root / "users.txt"
    users.write_text("\n".join(ON_SERVER) + "\n", encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", "fake-server", "--port", "0", "--latency", "0.05",
         "--users-file", str(users)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        source, audit = _input(root / "erasures.csv"), root / "erasures.jsonl"
        # Paths relative to the directory, as a person would type them (and as docs/ shows).
        delete = subprocess.Popen(
            [sys.executable, "-m", "bulkdelete", "delete", source.name, "--permanent", "--yes",
             "--ref-column", "ticket", "--base-url", base_url, "--audit", audit.name,
             "--rate", "10", "--concurrency", "2", "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(), cwd=root,
        )  # fmt: skip
        wait_for_outcomes(audit, STOP_AFTER)
        delete.send_signal(signal.SIGTERM)
        assert delete.wait(timeout=30) == 143
        checked = run_cli("check", audit.name, "--base-url", base_url, cwd=root)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        server.terminate()
        server.wait(timeout=5)
        if server.stdout is not None:
            server.stdout.close()
    html = root / "erasures.html"
    done = run_cli("report", audit.name, "--html", html.name, "--receipts", "r", cwd=root)
    assert done.returncode == 0, done.stderr
    receipt = root / "r" / f"{stem('DSR-02')}.html"
    page, receipt_page = load_pages(
        [html.as_uri(), receipt.as_uri()], profile=root / "profile", full_page=True, probes=PROBES
    )
    out = Path(os.environ.get("BULKDELETE_EVIDENCE_DIR") or root)
    (out / "report.png").write_bytes(page.screenshot)
    (out / "report.pdf").write_bytes(page.pdf)
    pdftotext, pdfinfo = shutil.which("pdftotext"), shutil.which("pdfinfo")
    assert pdftotext, "poppler-utils is missing: run `make browser`"
    assert pdfinfo, "poppler-utils is missing: run `make browser`"
    text = subprocess.run(
        [pdftotext, "-layout", str(out / "report.pdf"), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    info = subprocess.run(
        [pdfinfo, str(out / "report.pdf")], capture_output=True, text=True, check=True
    ).stdout
    lines = audit_lines(audit)
    uids = sorted(
        {r["normalised_uid"] for r in lines if r.get("event") == "sending"}
        | {r["normalised_uid"] for r in lines if r.get("outcome") in {"deleted", "not_found"}}
    )
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)[1])  # type: ignore[index]
    return Reviewed(audit, html, page, text, pages, uids, receipt_page)


def test_the_report_loads_without_errors(reviewed: Reviewed) -> None:
    """No error, exception or CSP violation in Chromium."""
    assert reviewed.page.errors == ()


def test_the_page_shows_who_what_when_and_every_outcome(reviewed: Reviewed) -> None:
    """Input file with SHA-256 and rows, operator, time range, verify's verdict and head, the
    runs' rows never attempted, read-back results, references, every UID."""
    html = reviewed.html.read_text(encoding="utf-8")
    lines = audit_lines(reviewed.audit)
    started = lines[0]
    (listed,) = started["inputs"]
    assert f"<code>{listed['sha256']}</code>" in html
    assert f"<td class=num>{listed['rows']}</td>" in html
    operator = started["operator"]
    assert f"{operator['user']}@{operator['host']}" in html
    assert "Time range</dt><dd>" + started["ts"].replace("T", " ") in html
    raw = reviewed.audit.read_bytes().splitlines()
    assert f"head: {link(raw[-1], None)}:{len(raw)}" in html
    assert "PASS: " in html
    finished = next(r for r in lines if r.get("event") == "run_finished")
    assert finished["status"] == "interrupted"
    never = finished["unsent"] + finished["unread"]
    assert never > 0
    assert f"<b>{never}</b><span>never attempted" in html
    assert f"<td class=num>{finished['unread']}</td></tr>" in html
    gone = sum(r.get("result") == "gone" for r in lines)
    assert f"Read back (<code>bulkdelete check</code>, latest per UID): gone {gone}." in html
    assert "DSR-01</td>" in html
    assert "1 invalid row, never sent" in html  # DSR-02
    # Not-found UIDs the bulk probe confirmed absent while the run went on (erasure.HOLD_SECONDS).
    absent = re.search(
        r"confirmed absent by its bulk probe \(not deactivated users\): (\d+)\.", html
    )
    assert absent, "no probed not-found UID on the page"
    assert int(absent.group(1)) >= 1
    assert "Reviewed by:" in html
    assert "scroll" not in html


def test_the_uid_table_filters_without_a_script(reviewed: Reviewed) -> None:
    """On screen every UID shows, then only the deleted ones once that filter is checked."""
    shown, filtered, deleted, scrollers, charts, controls = reviewed.page.probes
    assert shown == len(reviewed.uids)
    assert filtered == deleted > 0
    assert filtered < shown
    assert (scrollers, charts > 0, controls > 0) == (0, True, True)
    assert "<script" not in reviewed.html.read_text(encoding="utf-8")


def test_it_prints_every_row_and_no_chart(reviewed: Reviewed) -> None:
    """In print, with the deleted filter still checked: every row shows, nothing scrolls, no
    chart and no filter control."""
    shown, filtered, _, scrollers, charts, controls = reviewed.page.printed
    assert shown == filtered == len(reviewed.uids)
    assert (scrollers, charts, controls) == (0, 0, 0)


def test_the_pdf_holds_every_uid_and_the_evidence(reviewed: Reviewed) -> None:
    """The printed PDF (after the on-screen filter was set) lists every UID of the table, the
    not-found ones too, the verdict and the input's hash; the throughput chart is left out."""
    text = reviewed.pdf_text
    missing = [uid for uid in reviewed.uids if uid not in text]
    assert missing == []
    assert "member-004" in text  # not on the server: not found, and listed
    assert "PASS: " in text
    sha = audit_lines(reviewed.audit)[0]["inputs"][0]["sha256"]
    assert sha[:32] in text.replace("\n", "").replace(" ", "")
    assert "Throughput over time" not in text
    assert "Reviewed by:" in text
    assert reviewed.pdf_pages >= 2


def test_receipts_of_the_stopped_run_say_what_is_missing(
    reviewed: Reviewed, tmp_path: Path
) -> None:
    """No ticket of a run stopped with rows left is complete, since rows of any may be missing;
    each receipt says why: DSR-02's invalid row among them."""
    done = run_cli("report", str(reviewed.audit), "--receipts", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    receipts = {
        doc["reference"]: doc
        for doc in (json.loads(p.read_text("utf-8")) for p in (tmp_path / "r").glob("*.json"))
    }
    assert sorted(receipts)[0] == "DSR-01"
    assert not any(doc["complete"] for doc in receipts.values())
    assert "1 invalid row, never sent" in receipts["DSR-02"]["problems"]
    for doc in receipts.values():
        assert "stopped before the end of its input" in doc["problems"][-1]


def test_a_receipt_page_loads_and_prints_its_uids(reviewed: Reviewed, tmp_path: Path) -> None:
    """DSR-02's receipt: no error in Chromium, nothing scrolls, and its PDF names its UIDs,
    its invalid row and why it is incomplete."""
    page = reviewed.receipt
    assert page.errors == ()
    assert page.printed[3] == 0  # nothing scrolls in a box
    pdf = tmp_path / "receipt.pdf"
    pdf.write_bytes(page.pdf)
    pdftotext = shutil.which("pdftotext")
    assert pdftotext
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Request receipt: DSR-02" in text
    assert all(uid in text for uid in ("member-005", "member-008", "member-009"))
    assert "=HYPERLINK(x)" in text
    assert "INCOMPLETE" in text
