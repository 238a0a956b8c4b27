"""`delete --ref-column`: each row's request reference goes into its audit line as `ref`, read
beside the UIDs by the same strict rules (never guessed), from files and from stdin."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FakeFactory, audit_lines, cli_env, row_records, run_cli

from bulkdelete.columns import Columns, choose_layout
from bulkdelete.errors import InputError, SettingError
from bulkdelete.rows import Source, read_rows
from bulkdelete.settings import Secret, Settings

TICKETS = (
    "ticket,uid,requested_at\n"
    "DSR-1,alice-1,2026-11-01\n"
    "DSR-1,bob-2,2026-11-01\n"
    "DSR-2,carol-3,2026-11-02\n"
    ",dave-4,2026-11-03\n"  # an empty reference: allowed, and visible
    "DSR-3,=bad,2026-11-04\n"  # an invalid UID keeps its reference
    "DSR-3,Alice-1,2026-11-04\n"  # a duplicate keeps its own
    "DSR-4,ghost-9,2026-11-05\n"  # not on the server
)


def _tickets(tmp_path: Path) -> Path:
    source = tmp_path / "tickets.csv"
    source.write_text(TICKETS, encoding="utf-8")
    return source


def test_every_row_line_carries_the_reference_of_its_row(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A ticket,uid,requested_at CSV: each row line has its ticket, as do the sending lines."""
    server = fake_server(users=["alice-1", "bob-2", "carol-3", "dave-4"])
    audit = tmp_path / "audit.jsonl"
    done = run_cli(
        "delete", "--batch-size", "1", str(_tickets(tmp_path)), "--ref-column", "ticket",
        "--base-url", server.base_url, "--audit", str(audit),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # one invalid row

    rows = {r["source"].rpartition(":")[2]: (r["ref"], r["outcome"]) for r in row_records(audit)}
    assert rows == {
        "2": ("DSR-1", "deleted"),
        "3": ("DSR-1", "deleted"),
        "4": ("DSR-2", "deleted"),
        "5": ("", "deleted"),
        "6": ("DSR-3", "invalid"),
        "7": ("DSR-3", "duplicate"),
        "8": ("DSR-4", "not_found"),
    }
    lines = audit_lines(audit)
    sending = {r["normalised_uid"]: r["ref"] for r in lines if r.get("event") == "sending"}
    assert sending == {"alice-1": "DSR-1", "bob-2": "DSR-1", "carol-3": "DSR-2", "dave-4": ""} | {
        "ghost-9": "DSR-4"
    }
    assert lines[0]["settings"]["ref_column"] == "ticket"


def test_without_ref_column_rows_have_no_reference(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """No --ref-column: ref is null on every row line, and the extra columns are not read."""
    server = fake_server(users=["alice-1"])
    audit = tmp_path / "audit.jsonl"
    source = tmp_path / "users.csv"
    source.write_text("uid,ticket\nalice-1,DSR-1\n", encoding="utf-8")
    done = run_cli("delete", str(source), "--base-url", server.base_url, "--audit", str(audit))
    assert done.returncode == 0, done.stderr
    assert [r["ref"] for r in row_records(audit)] == [None]
    assert audit_lines(audit)[0]["settings"]["ref_column"] is None


def test_references_come_from_stdin_too(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A stream's header is judged the same way: its rows carry their references."""
    server = fake_server(users=["alice-1"])
    audit = tmp_path / "audit.jsonl"
    done = run_cli(
        "delete", "-", "--ref-column", "Ticket", "--base-url", server.base_url,
        "--audit", str(audit), stdin="uid,ticket\nalice-1,DSR-9\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [r["ref"] for r in row_records(audit)] == ["DSR-9"]


@pytest.mark.parametrize(
    ("content", "args", "said"),
    [
        (
            "uid,email\nalice-1,a@example.com\n",
            ["--ref-column", "ticket"],
            "has no column 'ticket' (--ref-column); the header has 'uid', 'email'",
        ),
        ("uid\nalice-1\n", ["--ref-column", "ticket"], "so --ref-column ticket cannot be found"),
        ("alice-1\n", ["--ref-column", "ticket", "--no-header"], "--ref-column names a column"),
        ("uid,ticket\nalice-1,T\n", ["--ref-column", "UID"], "--ref-column must name a column"),
        (
            "user,ticket\nalice-1,T\n",
            ["--column", "user", "--ref-column", "user"],
            "--ref-column must name a column",
        ),
    ],
    ids=["missing", "one-column", "no-header", "the-uids", "the-named-uids"],
)
def test_a_reference_column_that_cannot_be_read_is_exit_2_before_anything_is_sent(
    fake_server: FakeFactory, tmp_path: Path, content: str, args: list[str], said: str
) -> None:
    """A missing, impossible or ambiguous reference column: one line, exit 2, nothing sent."""
    server = fake_server(users=["alice-1"])
    source = tmp_path / "users.csv"
    source.write_text(content, encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    done = run_cli(
        "delete", str(source), *args, "--base-url", server.base_url, "--audit", str(audit),
        env=cli_env(),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert not audit.exists()
    assert not server.stats()["applied"]


def test_the_dry_run_names_the_column_of_references(tmp_path: Path) -> None:
    """A dry run shows where the references are read from, beside the column of UIDs."""
    done = run_cli(
        "delete", str(_tickets(tmp_path)), "--ref-column", "ticket", "--dry-run",
        "--app-id", "app",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "column 'uid' (2 of 3), references from 'ticket'" in done.stdout


def test_rows_read_the_reference_trimmed_and_a_missing_field_as_empty(tmp_path: Path) -> None:
    """The reference is trimmed like a UID; a short row's is empty, never another column's."""
    source = tmp_path / "t.csv"
    source.write_text("uid,note,ticket\n a-1 ,x, T-1 \nb-2\n", encoding="utf-8")
    rows = list(read_rows([Source.file(source)], column=None, ref_column="TICKET"))
    assert [(row.uid, row.ref) for row in rows] == [("a-1", "T-1"), ("b-2", "")]


def test_an_empty_input_with_a_reference_column_names_the_flag() -> None:
    """No record at all: there is no header in which to find the reference column."""
    with pytest.raises(InputError, match="no header row, so --ref-column t cannot be found"):
        choose_layout(None, Columns(ref="t"), source="x", line=None)


def test_settings_refuse_a_blank_reference_column() -> None:
    """A blank name cannot name a column."""
    with pytest.raises(SettingError):
        Settings(
            base_url="https://api.example/v3",
            api_key=Secret("k"),
            audit_path=Path("a.jsonl"),
            ref_column=" ",
        )


def test_with_audit_uid_hash_the_reference_stays_but_not_the_uid_in_it(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--audit-uid-hash keeps the ticket id in clear (it joins the audit to the request) and
    replaces a UID quoted in it by the UID's pseudonym."""
    server = fake_server(users=["alice-1"])
    source = tmp_path / "users.csv"
    source.write_text("uid,ticket\nalice-1,DSR-7 erase alice-1\n", encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    done = run_cli(
        "delete", str(source), "--ref-column", "ticket", "--audit-uid-hash",
        "--base-url", server.base_url, "--audit", str(audit),
        env=cli_env(BULKDELETE_AUDIT_KEY="ref-key"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = row_records(audit)
    assert row["ref"] == f"DSR-7 erase {row['normalised_uid']}"
    assert row["normalised_uid"].startswith("hmac:")
    assert b"alice" not in audit.read_bytes()
