"""What a scheduler watches: `--metrics-file` in Prometheus' text format, and log events that
name their run and audit; real CLI processes against the fake server."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

from helpers import API_KEY, FakeFactory, cli_env, run_cli
from prometheus_client.parser import text_string_to_metric_families

from bulkdelete.metrics import LAST_SUCCESS, write_metrics
from bulkdelete.outcome import Outcome
from bulkdelete.summary import RunStatus, Summary

USERS = [f"metric-{n:03d}" for n in range(30)]
ROWS = [*USERS, "ghost-1", "ghost-2", "=bad", "METRIC-000", "bad uid"]


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse a metrics file with prometheus_client's own parser: (name, labels) -> value."""
    families = text_string_to_metric_families(path.read_text(encoding="utf-8"))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def _run(
    base_url: str, tmp_path: Path, name: str, *, rows: list[str] = ROWS, key: str = API_KEY
) -> tuple[int, dict[str, Any], Path, str]:
    source = tmp_path / "uids.txt"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    audit, summary, metrics = (tmp_path / f"{name}{ext}" for ext in (".jsonl", ".json", ".prom"))
    done = run_cli(
        "delete", str(source), "--base-url", base_url, "--audit", str(audit),
        "--summary-json", str(summary), "--metrics-file", str(metrics), "--no-progress",
        "--concurrency", "4", "--batch-size", "1", env=cli_env(COMETCHAT_API_KEY=key),
    )  # fmt: skip
    return done.returncode, json.loads(summary.read_text(encoding="utf-8")), metrics, done.stderr


def test_metrics_parse_and_their_counts_equal_the_summarys(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Rows by outcome, requests, 429s, duration and exit code are the summary's figures, and
    the 429s are the ones the server sent."""
    server = fake_server(
        "--throttle-rate", "0.3", "--fault-retry-after", "0.05", "--seed", "7", users=USERS
    )
    before = time.time()
    code, summary, metrics, _ = _run(server.base_url, tmp_path, "run")
    assert code == 1  # two invalid rows

    got = _samples(metrics)
    rows = {
        labels[0][1]: value for (name, labels), value in got.items() if name == "bulkdelete_rows"
    }
    assert rows == {
        **summary["outcomes"],
        "skipped": summary["skipped"],
        "unsent": summary["unsent"],
        "unanswered": summary["unanswered"],
        "unread": summary["unread"],
    }
    assert sum(rows.values()) == summary["total"] == len(ROWS)
    assert got["bulkdelete_requests", ()] == summary["requests"]
    assert got["bulkdelete_rate_limited_answers", ()] == summary["rate_limited"]
    assert summary["rate_limited"] == server.stats()["status_counts"]["429"] > 0
    assert got["bulkdelete_duration_seconds", ()] == summary["duration_seconds"]
    assert got["bulkdelete_exit_code", ()] == code
    assert before <= got["bulkdelete_last_run_timestamp_seconds", ()] <= time.time()
    assert (LAST_SUCCESS, ()) not in got  # exit 1 is no success, and none came before


def test_a_failed_run_keeps_the_last_success_time(fake_server: FakeFactory, tmp_path: Path) -> None:
    """A run that exits 0 records its time; a later failing run (exit 3) keeps that time and
    records its own exit code, so time() - last success shows how long the job has failed."""
    server = fake_server(users=USERS)
    code, _, metrics, _ = _run(server.base_url, tmp_path, "run", rows=USERS[:5])
    assert code == 0
    succeeded = _samples(metrics)[LAST_SUCCESS, ()]
    code, summary, metrics, _ = _run(server.base_url, tmp_path, "run", key="wrong-key")
    assert code == 3
    got = _samples(metrics)
    assert got["bulkdelete_exit_code", ()] == 3
    assert got[LAST_SUCCESS, ()] == succeeded
    assert got["bulkdelete_requests", ()] == summary["requests"]


def test_the_metrics_file_names_no_uid_and_is_readable_by_the_collector(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Counts and times only: no UID, no path; mode 0644 whatever the umask, for node_exporter
    (a user of its own) to read; no temporary file is left beside it."""
    server = fake_server(users=USERS)
    _, _, metrics, _ = _run(server.base_url, tmp_path, "run")
    text = metrics.read_text(encoding="utf-8")
    assert not any(uid.lower() in text for uid in ROWS)
    assert str(tmp_path) not in text
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run.prom")) == [
        "run.prom"
    ]


def test_metrics_need_a_real_run() -> None:
    """--metrics-file with --dry-run is a usage error: there is nothing to record."""
    done = run_cli("delete", "-", "--dry-run", "--metrics-file", "m.prom", "--app-id", "a")
    assert done.returncode == 2
    assert "--metrics-file records what a run did" in done.stderr


def test_an_unreadable_earlier_file_has_no_last_success(tmp_path: Path) -> None:
    """A file that is not Prometheus text (or not there) holds no last success to keep."""
    path = tmp_path / "m.prom"
    path.write_bytes(b"\xff\xfe not metrics")
    summary = Summary(
        run_id="r",
        audit_path=tmp_path / "a.jsonl",
        target="t",
        permanent=False,
        status=RunStatus.ABORTED,
        counts={Outcome.DELETED: 1},
        requests=1,
        duration=0.5,
        unread=None,
    )
    write_metrics(path, summary, exit_code=3, now=1.0)
    got = _samples(path)
    assert (LAST_SUCCESS, ()) not in got
    assert ("bulkdelete_rows", (("outcome", "unread"),)) not in got  # not known: left out
    assert got["bulkdelete_rows", (("outcome", "deleted"),)] == 1


def test_every_log_event_names_the_run_and_its_audit(
    fake_server: FakeFactory, tmp_path: Path
) -> None:
    """Off a terminal the logs are JSON on stderr; each event carries run_id and audit."""
    server = fake_server(
        "--throttle-rate", "0.3", "--fault-retry-after", "0.05", "--seed", "3", users=USERS
    )
    source = tmp_path / "uids.txt"
    source.write_text("\n".join(USERS) + "\n", encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    done = run_cli(
        "delete", str(source), "--base-url", server.base_url, "--audit", str(audit),
        "--log-level", "debug", "--concurrency", "4", "--batch-size", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    run_id = json.loads(audit.read_text(encoding="utf-8").splitlines()[0])["run_id"]
    kinds = {event["event"] for event in events}
    assert {"retry_scheduled", "progress"} <= kinds
    assert [e for e in events if (e.get("run_id"), e.get("audit")) != (run_id, str(audit))] == []
