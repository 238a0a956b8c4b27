"""`report --by-ref` and `report --receipts` of real runs with `--ref-column`, against the fake
server: references grouped, one receipt per ticket, their heads and their privacy."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeFactory, audit_lines, cli_env, run_cli

from bulkdelete.receipts import stem

ON_SERVER = ["alice-1", "bob-2", "carol-3", "dave-4", "erin-5"]
TICKETS = (
    "ticket,uid,requested_at\n"
    "DSR-1,alice-1,2026-11-01\n"
    "DSR-1,bob-2,2026-11-01\n"
    "DSR-2,carol-3,2026-11-02\n"
    "DSR-2,ghost-9,2026-11-02\n"  # not on the server: not found, which completes it
    "DSR-3,dave-4,2026-11-03\n"
    "DSR-3,=bad,2026-11-03\n"  # never sent: DSR-3 is not complete
    "DSR-4,Alice-1,2026-11-04\n"  # a duplicate of DSR-1's: it shares that UID's fate
    "../../etc/x,erin-5,2026-11-05\n"  # a hostile reference names no path
)


def _run(server_url: str, tmp_path: Path, *extra: str, key: str | None = None) -> Path:
    source = tmp_path / "tickets.csv"
    source.write_text(TICKETS, encoding="utf-8")
    audit = tmp_path / "tickets.jsonl"
    env = cli_env(**({"BULKDELETE_AUDIT_KEY": key} if key else {}))
    done = run_cli(
        "delete", str(source), "--ref-column", "ticket", "--permanent", "--yes",
        "--base-url", server_url, "--audit", str(audit), *extra, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # the invalid row
    return audit


def _expected() -> dict[str, list[str]]:
    """Each ticket's valid UIDs, lowercased, as the CSV lists them."""
    groups: dict[str, list[str]] = {}
    for row in csv.DictReader(TICKETS.splitlines()):
        if not row["uid"].startswith("="):
            groups.setdefault(row["ticket"], []).append(row["uid"].lower())
    return groups


@pytest.fixture(scope="module")
def audited(module_fake_server: FakeFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed run of TICKETS with --ref-column ticket (one invalid row); read only."""
    server = module_fake_server(users=ON_SERVER)
    return _run(server.base_url, tmp_path_factory.mktemp("tickets"))


def test_by_ref_json_groups_the_uids_of_each_ticket(audited: Path) -> None:
    """Every ticket of the CSV, with its UIDs, their outcomes and times, and its completeness."""
    done = run_cli("report", str(audited), "--by-ref", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    refs = {r["reference"]: r for r in document["references"]}
    assert {ref: [u["uid"] for u in r["uids"]] for ref, r in refs.items()} == _expected()
    assert {ref: r["complete"] for ref, r in refs.items()} == {
        "DSR-1": True, "DSR-2": True, "DSR-3": False, "DSR-4": True, "../../etc/x": True,
    }  # fmt: skip
    assert refs["DSR-3"]["problems"] == ["1 invalid row, never sent"]
    assert refs["DSR-3"]["invalid_rows"][0]["value"] == "=bad"
    ghost = refs["DSR-2"]["uids"][1]
    assert (ghost["uid"], ghost["outcome"], ghost["error_code"]) == (
        "ghost-9", "not_found", "ERR_UID_NOT_FOUND",
    )  # fmt: skip
    # The bulk probe confirmed it absent: no unproven not-found left in the ticket.
    assert (ghost["absent"], refs["DSR-2"]["not_found_in_permanent"]) == (True, 0)
    rows = {r["source"]: r for r in audit_lines(audited) if "outcome" in r}
    alice = refs["DSR-1"]["uids"][0]
    assert alice["ts"] == rows[alice["sources"][0]]["ts"]
    assert refs["DSR-4"]["uids"][0]["outcome"] == "deleted"  # the duplicate row's UID
    (run,) = document["runs"]
    assert run["operator"]["user"]
    assert document["complete"] == 4


def test_by_ref_text_lists_each_ticket_and_its_uids(audited: Path) -> None:
    """A person reads each ticket's state, then a line per UID with its outcome and time."""
    done = run_cli("report", str(audited), "--by-ref")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("5 references, 4 complete\n")
    assert "\nDSR-1: complete\n" in done.stdout
    assert "\nDSR-3: INCOMPLETE: 1 invalid row, never sent\n" in done.stdout
    assert "  '=bad'  invalid (looks like a spreadsheet formula), never sent" in done.stdout
    assert "ghost-9  not_found (ERR_UID_NOT_FOUND)" in done.stdout


def test_receipts_one_per_ticket_private_and_anchored(audited: Path, tmp_path: Path) -> None:
    """One JSON and one HTML receipt per ticket, 0600 in a new 0700 directory; each names the
    run, its operator, the UIDs, and the audit's head, which verify --expect-head accepts."""
    out = tmp_path / "receipts"
    source = audited.parent / "tickets.csv"
    done = run_cli("report", str(audited), "--receipts", str(out), "--input", str(source))
    assert done.returncode == 0, done.stderr
    assert f"wrote 5 receipts (4 complete) to {out}" in done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{stem(t)}{s}" for t in _expected() for s in (".json", ".html"))
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    receipt: dict[str, Any] = json.loads((out / f"{stem('DSR-1')}.json").read_text("utf-8"))
    assert (receipt["reference"], receipt["complete"]) == ("DSR-1", True)
    assert [(u["uid"], u["outcome"]) for u in receipt["uids"]] == [
        ("alice-1", "deleted"),
        ("bob-2", "deleted"),
    ]
    started = audit_lines(audited)[0]
    assert receipt["runs"][0]["run_id"] == started["run_id"]
    assert receipt["runs"][0]["operator"] == started["operator"]
    assert receipt["verify"]["ok"] is True
    assert receipt["verify"]["inputs_checked"] is True
    (anchor,) = receipt["audits"]
    lines = audited.read_bytes().splitlines()
    assert anchor["lines"] == len(lines)
    check = run_cli("verify", str(audited), "--expect-head", anchor["expect_head"])
    assert check.returncode == 0, check.stdout
    page = (out / f"{stem('DSR-1')}.html").read_text("utf-8")
    assert "COMPLETE: every UID deleted or not found." in page
    assert "<script" not in page
    assert anchor["expect_head"] in page


def test_with_audit_uid_hash_receipts_carry_only_pseudonyms(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Receipts carry what the audit carries and nothing more: no UID in clear, anywhere."""
    server = fake_server(users=ON_SERVER)
    audited = _run(server.base_url, tmp_path, "--audit-uid-hash", key="receipt-key")
    out = tmp_path / "receipts"
    done = run_cli(
        "report", str(audited), "--receipts", str(out), env=cli_env(BULKDELETE_AUDIT_KEY="k")
    )
    assert done.returncode == 0, done.stderr
    receipt = json.loads((out / f"{stem('DSR-1')}.json").read_text("utf-8"))
    assert all(u["uid"].startswith("hmac:") for u in receipt["uids"])
    written = b"".join(p.read_bytes() for p in out.iterdir()).lower()
    assert [uid for uid in [*ON_SERVER, "ghost-9"] if uid.encode() in written] == []


def test_receipts_need_references(fake_server: FakeFactory, tmp_path: Path) -> None:
    """An audit without references has no receipts to write: one line, exit 2, no directory;
    a file named as the directory is refused too."""
    server = fake_server(users=ON_SERVER)
    source = tmp_path / "uids.txt"
    source.write_text("alice-1\n", encoding="utf-8")
    audit = tmp_path / "plain.jsonl"
    done = run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit))
    assert done.returncode == 0, done.stderr
    refused = run_cli("report", str(audit), "--receipts", str(tmp_path / "r"))
    assert refused.returncode == 2
    assert "no row of these audits carries a request reference" in refused.stderr
    assert not (tmp_path / "r").exists()
    as_file = run_cli("report", str(audit), "--receipts", str(source))
    assert as_file.returncode == 2
    assert "is a file" in as_file.stderr
    text = run_cli("report", str(audit), "--by-ref")
    assert "no row of these audits carries a request reference" in text.stdout
    lone = run_cli("report", str(audit), "--input", str(source))
    assert lone.returncode == 2


@pytest.mark.parametrize(
    ("ref", "prefix"),
    [("DSR-1", "DSR-1-"), ("../../etc/x", "etc_x-"), ("", "empty-"), ("a/b", "a_b-")],
)
def test_a_receipt_file_name_is_safe_and_unique(ref: str, prefix: str) -> None:
    """Only letters, digits, ., - and _; a hash of the whole reference keeps them apart."""
    name = stem(ref)
    assert name.startswith(prefix)
    assert "/" not in name
    assert not name.startswith(".")
    assert stem("a/b") != stem("a_b")
