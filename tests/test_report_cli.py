"""`bulkdelete report`: exports a later run can take as input, against real runs."""

from __future__ import annotations

from pathlib import Path

from helpers import FakeFactory, run_cli

from bulkdelete.rows import Source, read_rows

USERS = [f"member-{n}" for n in range(20)]


def test_not_found_in_a_permanent_run_is_exported(fake_server: FakeFactory, tmp_path: Path) -> None:
    """Users deactivated earlier answer not-found to an erasure; --not-found-out lists them."""
    server = fake_server(users=USERS)
    earlier, everyone = tmp_path / "earlier.txt", tmp_path / "everyone.txt"
    earlier.write_text("\n".join(USERS[:5]) + "\n", encoding="utf-8")
    everyone.write_text("\n".join(USERS) + "\n", encoding="utf-8")
    soft, erase = tmp_path / "soft.jsonl", tmp_path / "erase.jsonl"
    assert run_cli("delete", str(earlier), "--base-url", server.base_url,
                   "--audit", str(soft)).returncode == 0  # fmt: skip
    assert run_cli("delete", str(everyone), "--base-url", server.base_url, "--audit", str(erase),
                   "--permanent", "--yes").returncode == 0  # fmt: skip
    out = tmp_path / "not-found.csv"

    done = run_cli("report", str(erase), "--not-found-out", str(out))

    assert done.returncode == 0, done.stderr
    assert "wrote 5 not found (permanent run) UIDs" in done.stderr
    rows = list(read_rows([Source.file(out)], column=None))
    assert sorted(row.uid for row in rows if row.uid) == sorted(USERS[:5])
