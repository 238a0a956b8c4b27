"""`bulkdelete report`: exports a later run can take as input, against real runs."""

from __future__ import annotations

from pathlib import Path

from helpers import FakeFactory, FakeProcess, run_cli

from bulkdelete.charts import throughput
from bulkdelete.rows import Source, read_rows

USERS = [f"member-{n}" for n in range(20)]


def test_users_a_permanent_run_found_deactivated_are_exported_as_failed(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Users deactivated earlier answer not-found to an erasure (on a server that keeps them):
    the probe finds them deactivated, so --failed-out lists them and --not-found-out does not."""
    server = fake_server("--deactivated-not-found", users=USERS)
    earlier, everyone = tmp_path / "earlier.txt", tmp_path / "everyone.txt"
    earlier.write_text("\n".join(USERS[:5]) + "\n", encoding="utf-8")
    everyone.write_text("\n".join(USERS) + "\n", encoding="utf-8")
    soft, erase = tmp_path / "soft.jsonl", tmp_path / "erase.jsonl"
    assert run_cli("delete", str(earlier), "--base-url", server.base_url,
                   "--audit", str(soft)).returncode == 0  # fmt: skip
    assert run_cli("delete", str(everyone), "--base-url", server.base_url, "--audit", str(erase),
                   "--permanent", "--yes").returncode == 1  # fmt: skip
    failed, not_found = tmp_path / "failed.csv", tmp_path / "not-found.csv"

    done = run_cli(
        "report", str(erase), "--failed-out", str(failed), "--not-found-out", str(not_found)
    )

    assert done.returncode == 0, done.stderr
    assert "wrote 0 not found (permanent run) UIDs" in done.stderr
    rows = list(read_rows([Source.file(failed)], column=None))
    assert sorted(row.uid for row in rows if row.uid) == sorted(USERS[:5])
    assert failed.read_text(encoding="utf-8").count("DEACTIVATED_NOT_ERASED") == 5


def _audit_of_one_run(server: FakeProcess, tmp_path: Path) -> Path:
    """Delete three users into a fresh audit and return it."""
    source, audit = tmp_path / "in.txt", tmp_path / "a.jsonl"
    source.write_text("\n".join(USERS[:3]) + "\n", encoding="utf-8")
    assert run_cli("delete", str(source), "--base-url", server.base_url,
                   "--audit", str(audit)).returncode == 0  # fmt: skip
    return audit


def test_report_outputs_in_a_missing_directory_exit_2_with_one_line(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--html, --failed-out and --not-found-out into a directory that does not exist: exit 2."""
    server = fake_server(users=USERS)
    audit = _audit_of_one_run(server, tmp_path)
    missing = tmp_path / "no-such-dir" / "out"

    for flag in ("--html", "--failed-out", "--not-found-out"):
        done = run_cli("report", str(audit), flag, str(missing))

        assert done.returncode == 2, flag
        assert f"{flag} {missing}: there is no directory" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_report_outputs_never_overwrite_an_audit_and_check_leaves_foreign_files_alone(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """report --html AUDIT over its own audit, and check on a non-audit file: exit 2, unchanged."""
    server = fake_server(users=USERS)
    audit = _audit_of_one_run(server, tmp_path)
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_bytes(b"\x00\x01 not an audit, no newline")
    before = (audit.read_bytes(), foreign.read_bytes())

    html = run_cli("report", str(audit), "--html", str(audit))
    check = run_cli("check", str(foreign), "--base-url", server.base_url)

    assert (html.returncode, check.returncode) == (2, 2)
    assert "would overwrite" in html.stderr
    assert "is not a bulkdelete audit" in check.stderr
    assert (audit.read_bytes(), foreign.read_bytes()) == before


def test_the_html_chart_draws_the_limit_an_auto_rate_run_learned(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Under --rate auto the dashed ceiling is the limit the server's headers advertised."""
    server = fake_server("--limit", "600", users=USERS)
    audit, page = _audit_of_one_run(server, tmp_path), tmp_path / "report.html"

    done = run_cli("report", str(audit), "--html", str(page))

    assert done.returncode == 0, done.stderr
    assert [run.rate_limit for run in throughput([audit]).runs] == [10.0]
    assert "rate limit: 10 requests/s" in page.read_text(encoding="utf-8")
