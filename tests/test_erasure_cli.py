"""A permanent run's not-found UIDs, told apart by the bulk probe, and ``--erase-deactivated``:
the real CLI against the real fake server over loopback, in both of the fake's modes for a
permanent DELETE of a deactivated user (``--deactivated-not-found``, and its default: erased).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import FakeFactory, FakeProcess, audit_lines, cli_env, row_records, run_cli

ACTIVE = ["act-1", "act-2"]
DEACTIVATED = ["off-1", "off-2", "off-3"]
ABSENT = ["gone-1", "gone-2"]


def _fake(fake_server: FakeFactory, tmp_path: Path, *flags: str) -> FakeProcess:
    deactivated = tmp_path / "deactivated.txt"
    deactivated.write_text("\n".join(DEACTIVATED) + "\n", encoding="utf-8")
    return fake_server("--deactivated-file", str(deactivated), *flags, users=ACTIVE)


def _erase(
    fake: FakeProcess, tmp_path: Path, *flags: str, env: dict[str, str] | None = None
) -> tuple[int, str, Path, Path]:
    """Run a permanent delete of every kind of UID; return its exit code, stderr, audit and
    summary file."""
    users = tmp_path / "users.csv"
    users.write_text("uid\n" + "\n".join([*ACTIVE, *DEACTIVATED, *ABSENT]) + "\n", "utf-8")
    audit, summary = tmp_path / "audit.jsonl", tmp_path / "summary.json"
    done = run_cli(
        "delete", str(users), "--permanent", "--yes", "--base-url", fake.base_url,
        "--audit", str(audit), "--summary-json", str(summary), "--no-progress", *flags, env=env,
    )  # fmt: skip
    return done.returncode, done.stderr, audit, summary


def _rows(audit: Path) -> dict[str, dict[str, Any]]:
    return {r["normalised_uid"]: r for r in row_records(audit)}


def _states(fake: FakeProcess) -> dict[str, str]:
    applied: dict[str, str] = fake.stats()["applied"]
    return applied


def test_without_erasing_deactivated_users_fail_and_absent_ones_are_confirmed(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Not-found mode: deactivated users fail DEACTIVATED_NOT_ERASED (exit 1), absent ones
    end not_found confirmed by the probe, and nobody is reactivated."""
    fake = _fake(fake_server, tmp_path, "--deactivated-not-found")
    code, _, audit, summary_file = _erase(fake, tmp_path)

    rows = _rows(audit)
    assert code == 1
    assert {uid: (rows[uid]["outcome"], rows[uid]["error_code"]) for uid in rows} == {
        **dict.fromkeys(ACTIVE, ("deleted", None)),
        **dict.fromkeys(DEACTIVATED, ("failed", "DEACTIVATED_NOT_ERASED")),
        **dict.fromkeys(ABSENT, ("not_found", "ERR_UID_NOT_FOUND")),
    }
    assert all("notFound" in (rows[uid]["note"] or "") for uid in ABSENT)
    (probed,) = [r for r in audit_lines(audit) if r.get("event") == "probed"]
    assert (sorted(probed["absent"]), sorted(probed["deactivated"])) == (ABSENT, DEACTIVATED)
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert (summary["absent_confirmed"], summary["not_found_in_permanent_run"]) == (2, 0)
    assert summary["failures_by_code"] == {"DEACTIVATED_NOT_ERASED": 3}
    stats = fake.stats()
    assert (stats["reactivated"], _states(fake)) == (0, dict.fromkeys(ACTIVE, "removed"))
    report = json.loads(run_cli("report", str(audit), "--json").stdout)
    assert (report["absent_confirmed"], report["not_found_in_permanent"]) == (2, [])
    assert report["failures_by_code"] == {"DEACTIVATED_NOT_ERASED": 3}


def test_the_probe_speaks_before_the_rows_it_settles(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """The probe's intent and its verdict come before the row lines of the UIDs it probed."""
    fake = _fake(fake_server, tmp_path, "--deactivated-not-found")
    _, _, audit, _ = _erase(fake, tmp_path)

    lines = audit_lines(audit)
    kinds = [line.get("event") or line["normalised_uid"] for line in lines]
    probe, probed = kinds.index("batch_sending"), kinds.index("probed")
    (intent,) = [line for line in lines if line.get("event") == "batch_sending"]
    assert intent["call"] == "bulk_deactivate"
    assert sorted(intent["normalised_uids"]) == sorted([*DEACTIVATED, *ABSENT])
    assert probe < probed < min(kinds.index(uid) for uid in [*DEACTIVATED, *ABSENT])


def test_erase_deactivated_reactivates_and_erases_them(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Not-found mode with --erase-deactivated: every deactivated user ends erased, after its
    reactivation's intent line; the run exits 0 and verify --input passes."""
    fake = _fake(fake_server, tmp_path, "--deactivated-not-found")
    code, stderr, audit, _ = _erase(fake, tmp_path, "--erase-deactivated")

    rows = _rows(audit)
    assert (code, stderr) == (0, "")
    assert {uid: rows[uid]["outcome"] for uid in rows} == {
        **dict.fromkeys([*ACTIVE, *DEACTIVATED], "deleted"),
        **dict.fromkeys(ABSENT, "not_found"),
    }
    assert all("reactivated and erased" in rows[uid]["note"] for uid in DEACTIVATED)
    assert _states(fake) == dict.fromkeys([*ACTIVE, *DEACTIVATED], "removed")
    assert fake.stats()["reactivated"] == len(DEACTIVATED)
    lines = audit_lines(audit)
    (reactivation,) = [n for n, line in enumerate(lines) if line.get("call") == "bulk_reactivate"]
    assert sorted(lines[reactivation]["normalised_uids"]) == DEACTIVATED
    erased_at = [n for n, line in enumerate(lines) if line.get("normalised_uid") in DEACTIVATED]
    assert reactivation < min(n for n in erased_at if "outcome" in lines[n])
    users = tmp_path / "users.csv"
    verified = run_cli("verify", str(audit), "--input", str(users))
    assert verified.returncode == 0, verified.stdout


def test_a_server_that_erases_deactivated_users_needs_no_reactivation(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """The fake's default (as CometChat's tests show): the DELETE erases deactivated users, the
    probe only confirms the absent ones, and --erase-deactivated reactivates nobody."""
    fake = _fake(fake_server, tmp_path)
    code, _, audit, _ = _erase(fake, tmp_path, "--erase-deactivated")

    rows = _rows(audit)
    assert code == 0
    assert {uid: rows[uid]["outcome"] for uid in rows} == {
        **dict.fromkeys([*ACTIVE, *DEACTIVATED], "deleted"),
        **dict.fromkeys(ABSENT, "not_found"),
    }
    (probed,) = [r for r in audit_lines(audit) if r.get("event") == "probed"]
    assert (sorted(probed["absent"]), probed["deactivated"]) == (ABSENT, [])
    assert (fake.stats()["reactivated"], fake.stats()["bulk_calls"]) == (0, 1)


def test_erase_deactivated_needs_permanent(fake_server: FakeFactory, tmp_path: Path) -> None:
    """Without --permanent the flag is refused in one line, exit 2, before anything is sent."""
    fake = _fake(fake_server, tmp_path)
    users = tmp_path / "users.csv"
    users.write_text("uid\nact-1\n", encoding="utf-8")
    done = run_cli(
        "delete", str(users), "--erase-deactivated", "--base-url", fake.base_url,
        "--audit", str(tmp_path / "a.jsonl"),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "bulkdelete: error: --erase-deactivated erases the deactivated users a permanent run "
        "finds: it needs --permanent"
    ]
    assert (fake.stats()["requests"], (tmp_path / "a.jsonl").exists()) == (0, False)


def test_report_names_the_soft_run_that_deactivated_users_a_permanent_run_missed(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """A soft run deactivates users, a permanent run (not-found mode) finds them not erased:
    the report over both audits says which run deactivated each."""
    fake = fake_server("--deactivated-not-found", users=ACTIVE)
    users = tmp_path / "users.csv"
    users.write_text("uid\n" + "\n".join(ACTIVE) + "\n", encoding="utf-8")
    soft, hard = tmp_path / "soft.jsonl", tmp_path / "hard.jsonl"
    common = ("--yes", "--base-url", fake.base_url, "--no-progress")
    assert run_cli("delete", str(users), "--audit", str(soft), *common).returncode == 0
    assert run_cli(
        "delete", str(users), "--permanent", "--audit", str(hard), *common
    ).returncode == 1  # fmt: skip

    soft_run = audit_lines(soft)[0]["run_id"]
    report = json.loads(run_cli("report", str(soft), str(hard), "--json").stdout)
    assert report["deactivated_by"] == dict.fromkeys(ACTIVE, soft_run)
    text = run_cli("report", str(soft), str(hard)).stdout
    assert f"act-1 (deactivated by run {soft_run})" in text


def test_under_uid_hash_the_probe_and_the_erasure_name_no_uid(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """--audit-uid-hash: the probe's and the reactivation's lines name pseudonyms only, no UID
    appears anywhere in the audit, and verify --input passes with the key."""
    fake = _fake(fake_server, tmp_path, "--deactivated-not-found")
    env = cli_env(BULKDELETE_AUDIT_KEY="auditor-key-15b")
    code, _, audit, _ = _erase(fake, tmp_path, "--erase-deactivated", "--audit-uid-hash", env=env)

    text = audit.read_text(encoding="utf-8")
    lines = audit_lines(audit)
    (probed,) = [line for line in lines if line.get("event") == "probed"]
    named = [*probed["absent"], *probed["deactivated"]]
    assert code == 0
    assert (len(named), all(uid.startswith("hmac:") for uid in named)) == (5, True)
    assert [uid for uid in [*ACTIVE, *DEACTIVATED, *ABSENT] if uid in text] == []
    assert _states(fake) == dict.fromkeys([*ACTIVE, *DEACTIVATED], "removed")
    users = tmp_path / "users.csv"
    verified = run_cli("verify", str(audit), "--input", str(users), env=env)
    assert verified.returncode == 0, verified.stdout
