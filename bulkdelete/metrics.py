"""A run's figures as a Prometheus text file, for a scheduler's monitoring to watch.

``write_metrics`` follows node_exporter's textfile-collector convention: a registry of the run's
own (nothing of the process), written by ``prometheus_client.write_to_textfile``, which writes a
temporary file beside the target and renames it over the target, so a scrape never reads half a
file. Every figure is a gauge of the last run, since each run rewrites the file:

- ``bulkdelete_rows{outcome=...}``: the input's rows, each under exactly one of the outcomes,
  ``skipped``, ``unsent``, ``unanswered`` or ``unread`` (left out when not known), as in the
  summary;
- ``bulkdelete_requests``, ``bulkdelete_rate_limited_answers`` (429s),
  ``bulkdelete_duration_seconds``, ``bulkdelete_exit_code``;
- ``bulkdelete_last_run_timestamp_seconds``, and ``bulkdelete_last_success_timestamp_seconds``:
  when a run last exited 0. A run that did not succeed keeps the value the file held, so
  ``time() - bulkdelete_last_success_timestamp_seconds`` says how long the job has been failing.

The file names no UID, no reference and no path: only counts and times. It is therefore left
readable by others (mode 0644, whatever the umask), since the node_exporter that reads it runs
as a user of its own.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from bulkdelete.outcome import Outcome
from bulkdelete.summary import Summary

MODE: Final = 0o644  # counts and times only: the collector, another user, must read them
LAST_SUCCESS: Final = "bulkdelete_last_success_timestamp_seconds"


def write_metrics(path: Path, summary: Summary, *, exit_code: int, now: float) -> None:
    """Write the run's figures to ``path`` (atomically); ``now`` is the Unix time it ended.

    Raises ``OSError`` when the file cannot be written.
    """
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, documentation: str, value: float) -> None:
        Gauge(name, documentation, registry=registry).set(value)

    rows = Gauge(
        "bulkdelete_rows",
        "Input rows of the last run, each under one outcome, as its summary counts them.",
        ["outcome"],
        registry=registry,
    )
    left = {
        "skipped": summary.skipped,
        "unsent": summary.unsent,
        "unanswered": summary.unanswered,
        "unread": summary.unread,
    }
    for outcome, count in {
        **{o.value: summary.counts.get(o, 0) for o in Outcome},
        **left,
    }.items():
        if count is not None:
            rows.labels(outcome).set(count)
    gauge("bulkdelete_requests", "Requests the last run sent.", summary.requests)
    gauge(
        "bulkdelete_rate_limited_answers",
        "Answers of the last run that were 429 Too Many Requests.",
        summary.rate_limited,
    )
    duration = round(summary.duration, 3)  # as the summary says it
    gauge("bulkdelete_duration_seconds", "How long the last run took.", duration)
    gauge("bulkdelete_exit_code", "The exit code of the last run (0: success).", exit_code)
    gauge("bulkdelete_last_run_timestamp_seconds", "When the last run ended (Unix time).", now)
    succeeded = now if exit_code == 0 else _last_success(path)
    if succeeded is not None:
        gauge(LAST_SUCCESS, "When a run last exited 0 (Unix time).", succeeded)
    write_to_textfile(str(path), registry)
    path.chmod(MODE)


def _last_success(path: Path) -> float | None:
    """Return the last success the file records; None when there is none, or no file to read."""
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return sample.value
    return None
