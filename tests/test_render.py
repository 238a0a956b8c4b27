"""Human-readable text: the end-of-run summary and the dry-run report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkdelete.columns import Layout
from bulkdelete.outcome import Outcome
from bulkdelete.render import confirmation_text, dry_run_text, summary_json, summary_text
from bulkdelete.rows import Row
from bulkdelete.settings import Secret, Settings
from bulkdelete.summary import RunStatus, Summary
from bulkdelete.survey import survey

COUNTS = {
    Outcome.DELETED: 1234,
    Outcome.NOT_FOUND: 56,
    Outcome.FAILED: 7,
    Outcome.INVALID: 3,
    Outcome.DUPLICATE: 2,
    Outcome.ALREADY_DEACTIVATED: 4,
}


def make_summary(**overrides: Any) -> Summary:
    """A completed deactivation run with COUNTS, changed by ``overrides``."""
    values: dict[str, Any] = {
        "run_id": "run-1",
        "audit_path": Path("/var/audit/run-1.jsonl"),
        "target": "production",
        "permanent": False,
        "status": RunStatus.COMPLETED,
        "counts": COUNTS,
        "requests": 1400,
        "duration": 10.0,
    }
    values.update(overrides)
    return Summary(**values)


def count_on_line(text: str, label: str) -> int:
    """Return the number on the one line that starts (after indentation) with ``label``."""
    found = re.findall(rf"^\s*{re.escape(label)}\s+(\d+)\s*$", text, flags=re.MULTILINE)
    assert len(found) == 1, f"{label!r} not on exactly one line of:\n{text}"
    return int(found[0])


# --- summary_text -----------------------------------------------------------------------------


def test_summary_lists_every_outcome_with_its_count() -> None:
    """Every outcome has a line with its count."""
    text = summary_text(make_summary(), resume_command=None)
    expected = {o.value: n for o, n in COUNTS.items()}
    assert expected == {o.value: count_on_line(text, o.value) for o in Outcome}


@pytest.mark.parametrize(
    ("retried", "throttled", "words"),
    [
        (1, 1, "1 UID needed retries; 1 answer was 429"),
        (2, 3, "2 UIDs needed retries; 3 answers were 429"),
        (0, 0, "0 UIDs needed retries\n"),
    ],
)
def test_summary_counts_retries_and_429s_in_words_that_agree(
    retried: int, throttled: int, words: str
) -> None:
    """One UID, one answer: singular; any other count: plural."""
    summary = make_summary(retried_uids=retried, rate_limited=throttled)
    assert words in summary_text(summary, resume_command=None) + "\n"


def test_summary_lists_outcomes_with_no_rows_as_zero() -> None:
    """Outcomes that did not happen are still listed, with 0."""
    text = summary_text(make_summary(counts={Outcome.DELETED: 5}), resume_command=None)
    expected = {o.value: (5 if o is Outcome.DELETED else 0) for o in Outcome}
    assert expected == {o.value: count_on_line(text, o.value) for o in Outcome}


def test_summary_says_deactivation_for_a_soft_delete() -> None:
    """A run without --permanent is described as deactivation, never as permanent."""
    text = summary_text(make_summary(permanent=False), resume_command=None)
    expected = (True, False)
    assert expected == ("deactivation" in text, "permanent" in text.lower())


def test_summary_says_permanent_for_a_hard_delete() -> None:
    """A --permanent run is described as permanent, not as deactivation."""
    text = summary_text(make_summary(permanent=True), resume_command=None)
    expected = (True, False)
    assert expected == ("permanent" in text.lower(), "deactivation" in text)


def test_summary_names_the_target_total_rows_and_audit() -> None:
    """The summary names the target, the total row count and where the audit is."""
    text = summary_text(make_summary(), resume_command=None)
    total = sum(COUNTS.values())
    expected = [True, True, True]
    assert expected == [
        "production" in text,
        f"{total} rows" in text,
        "/var/audit/run-1.jsonl" in text,
    ]


def test_summary_shows_the_resume_command_only_when_given() -> None:
    """The resume command appears when one is given and not otherwise."""
    command = "bulkdelete delete users.csv --resume /var/audit/run-1.jsonl"
    with_command = summary_text(make_summary(), resume_command=command)
    without = summary_text(make_summary(), resume_command=None)
    expected = (True, False)
    assert expected == (command in with_command, "--resume" in without)
    assert with_command.startswith(without)  # the command is added, nothing else changes


def test_summary_shows_the_fatal_reason() -> None:
    """An aborted run says which code and message stopped it."""
    summary = make_summary(
        status=RunStatus.ABORTED,
        fatal_code="AUTH_ERR_APIKEY_NOT_FOUND",
        fatal_message="The API key is not valid.",
    )
    text = summary_text(summary, resume_command=None)
    expected = (True, True)
    assert expected == (
        "AUTH_ERR_APIKEY_NOT_FOUND" in text,
        "The API key is not valid." in text,
    )


def test_summary_of_a_clean_run_has_no_fatal_reason() -> None:
    """A completed run without a fatal answer has no 'stopped because' line."""
    text = summary_text(make_summary(), resume_command=None)
    assert "stopped" not in text


def test_fatal_reason_without_a_message_does_not_print_none() -> None:
    """A fatal code with no message is shown without a literal 'None'."""
    summary = make_summary(
        status=RunStatus.ABORTED, fatal_code="AUTH_ERR_NO_ACCESS", fatal_message=None
    )
    text = summary_text(summary, resume_command=None)
    expected = (True, False)
    assert expected == ("AUTH_ERR_NO_ACCESS" in text, "None" in text)


def test_summary_reports_rows_skipped_by_resume_and_rows_left_unsent() -> None:
    """A stopped, resumed run says how many rows were skipped and how many were never sent."""
    summary = make_summary(status=RunStatus.INTERRUPTED, skipped=4321, unsent=8765)
    text = summary_text(summary, resume_command="bulkdelete delete users.csv --resume a.jsonl")
    expected = (True, True)
    assert expected == ("4321" in text, "8765" in text), text


def test_summary_first_line_differs_by_status() -> None:
    """Completed, aborted and interrupted runs open with different words."""
    first_lines = {
        status: summary_text(make_summary(status=status), resume_command=None).splitlines()[0]
        for status in RunStatus
    }
    assert len(RunStatus) == len(set(first_lines.values()))
    assert "ABORTED" in first_lines[RunStatus.ABORTED].upper()
    assert "INTERRUPTED" in first_lines[RunStatus.INTERRUPTED].upper()


def test_summary_with_zero_duration_does_not_divide_by_zero() -> None:
    """A run that took no measurable time still renders."""
    text = summary_text(make_summary(duration=0.0, requests=0), resume_command=None)
    expected = COUNTS[Outcome.DELETED]
    assert expected == count_on_line(text, "deleted")


def test_summary_json_has_the_same_facts_as_the_text() -> None:
    """summary_json is one JSON document with the outcome counts, status, fatal code and command."""
    summary = make_summary(
        status=RunStatus.ABORTED, fatal_code="AUTH_ERR_NO_ACCESS", skipped=4, unsent=9
    )
    command = "bulkdelete delete users.csv --resume a.jsonl"
    document = orjson.loads(summary_json(summary, resume_command=command))
    expected = (
        {o.value: n for o, n in COUNTS.items()},
        sum(COUNTS.values()),
        "aborted",
        "AUTH_ERR_NO_ACCESS",
        4,
        9,
        command,
    )
    assert expected == (
        document["outcomes"],
        document["rows"],
        document["status"],
        document["fatal_code"],
        document["skipped"],
        document["unsent"],
        document["resume_command"],
    )


def test_summary_of_a_stopped_library_run_says_its_unread_rows_are_unknown() -> None:
    """An iterable of unknown length, stopped early: unread '?', no total, rows read so far."""
    summary = make_summary(status=RunStatus.INTERRUPTED, unsent=5, unread=None)
    text = summary_text(summary, resume_command=None)
    document = orjson.loads(summary_json(summary, resume_command=None))
    read = sum(COUNTS.values()) + 5
    assert f"interrupted: {read}+ rows" in text.splitlines()[0]
    assert re.search(r"^\s*unread\s+\?", text, flags=re.MULTILINE), text
    assert (document["total"], document["unread"]) == (None, None)


# --- dry_run_text -----------------------------------------------------------------------------


def make_settings(*, permanent: bool) -> Settings:
    return Settings(
        base_url="https://app.api-us.cometchat.io/v3",
        api_key=Secret("k"),
        audit_path=Path("audit.jsonl"),
        permanent=permanent,
        target="staging",
    )


ROWS = [
    Row("a.csv:2", "alice", "alice", None),
    Row("a.csv:3", "bob", "bob", None),
    Row("a.csv:4", "", None, "empty"),
    Row("a.csv:5", "Alice", "alice", None, duplicate=True),
    Row("b.txt:1", "=cmd", None, "starts with =, +, or @"),
    Row("b.txt:2", "  ", None, "empty"),
    Row("b.txt:3", "carol", "carol", None),
    Row("b.txt:4", "BOB", "bob", None, duplicate=True),
]
LAYOUTS = {"a.csv": Layout(("email", "uid", "x"), 1, 1), "b.txt": Layout()}


def test_dry_run_counts_valid_invalid_and_duplicate() -> None:
    """The dry run counts rows, files, and valid, invalid and duplicate rows."""
    text = dry_run_text(make_settings(permanent=False), LAYOUTS, survey(ROWS))
    assert re.search(r"\b8\b.*\b2 file", text), text
    found = {k: int(v) for k, v in re.findall(r"\b(valid|invalid|duplicate) (\d+)", text)}
    expected = {"valid": 3, "invalid": 3, "duplicate": 2}
    assert expected == found


def test_dry_run_groups_invalid_reasons_with_counts() -> None:
    """Each invalid reason appears once, with how many rows had it."""
    text = dry_run_text(make_settings(permanent=False), LAYOUTS, survey(ROWS))
    reason_lines = [line for line in text.splitlines() if "empty" in line or "starts" in line]
    assert len(reason_lines) == 2, text
    assert re.search(r"\b2\b\s+empty$", text, flags=re.MULTILINE), text
    assert re.search(r"\b1\b\s+starts with =, \+, or @$", text, flags=re.MULTILINE), text


@pytest.mark.parametrize(("permanent", "word"), [(True, "PERMANENTLY"), (False, "deactivate")])
def test_dry_run_says_what_a_real_run_would_do(permanent: bool, word: str) -> None:
    """The dry run says whether a real run would erase or deactivate, how many users, and where."""
    text = dry_run_text(make_settings(permanent=permanent), LAYOUTS, survey(ROWS))
    first = text.splitlines()[0]
    expected = (True, True, True)
    assert expected == (word in first, "3 users" in first, "staging" in first)
    assert "nothing was sent" in first


def test_dry_run_with_no_invalid_rows_lists_no_reasons() -> None:
    """Without invalid rows there are no reason lines."""
    valid = [row for row in ROWS if row.status == "valid"]
    text = dry_run_text(make_settings(permanent=False), LAYOUTS, survey(valid))
    expected = 4  # the headline, the counts and one line per input
    assert expected == len(text.splitlines())


def test_dry_run_and_confirmation_name_each_column_and_its_first_values() -> None:
    """Each input's column (or its absence) and its first three values, quoted, before a run."""
    layouts = {**LAYOUTS, "-": Layout(("UID",), 0, 3)}
    rows = [*ROWS, Row("-:4", "dave", "dave", None)]
    expected = [
        "  a.csv: column 'uid' (2 of 3); first values 'alice', 'bob', ''",
        "  b.txt: no header row, one UID per line; first values '=cmd', '  ', 'carol'",
        "  -: header 'UID' on line 3, one column; first values 'dave'",
    ]
    settings = make_settings(permanent=True)
    dry = dry_run_text(settings, layouts, survey(rows)).splitlines()
    confirm = confirmation_text(settings, layouts, survey(rows)).splitlines()
    assert (dry[2:5], confirm[1:]) == (expected, expected)
    assert "PERMANENTLY delete 4 users" in confirm[0]
