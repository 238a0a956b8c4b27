"""A run's counts: what each row came to, the peak rate, and the summary they add up to."""

from __future__ import annotations

from pathlib import Path

from helpers import API_KEY

from bulkdelete.outcome import Answer, Outcome, Result
from bulkdelete.settings import Secret, Settings
from bulkdelete.summary import RunStatus
from bulkdelete.tally import SAMPLES_PER_SECOND, Tally

SETTINGS = Settings(
    base_url="https://api.example/v3", api_key=Secret(API_KEY), audit_path=Path("a.jsonl")
)


def summary_of(
    tally: Tally,
    *,
    status: RunStatus = RunStatus.COMPLETED,
    fatal: Answer | None = None,
    total: int | None = None,
    audit_failure: str | None = None,
) -> dict[str, object]:
    """Return the fields of ``tally``'s summary that its counts decide."""
    summary = tally.summary(
        SETTINGS,
        run_id="r",
        status=status,
        fatal=fatal,
        duration=2.0,
        total=total,
        audit_failure=audit_failure,
    )
    return {
        "status": summary.status,
        "unsent": summary.unsent,
        "unread": summary.unread,
        "read": summary.read,
        "fatal": (summary.fatal_code, summary.fatal_message),
        "peak_rate": summary.peak_rate,
    }


def test_failures_are_counted_by_code_or_status() -> None:
    """Each failed row counts under its error code, or its HTTP status when it has no code."""
    tally = Tally()
    for result in [
        Result(Outcome.FAILED, 400, "ERR_BAD_REQUEST"),
        Result(Outcome.FAILED, 502),
        Result(Outcome.FAILED, 400, "ERR_BAD_REQUEST"),
        Result(Outcome.DELETED, 200),
        Result(Outcome.INVALID),
    ]:
        tally.settle(result)
    expected = (
        {Outcome.FAILED: 3, Outcome.DELETED: 1, Outcome.INVALID: 1},
        {"ERR_BAD_REQUEST": 2, "HTTP 502": 1},
    )
    assert expected == (dict(tally.counts), dict(tally.failures))


def test_the_peak_rate_is_the_most_requests_in_one_second_of_samples() -> None:
    """Samples a quarter second apart: the peak is the largest rise over any four of them."""
    tally = Tally()
    for requests in [5, 10, 15, 20, 60, 61, 62, 63, 64]:
        tally.requests = requests
        tally.sample()
    assert SAMPLES_PER_SECOND == 4
    expected = 55.0  # 5 -> 60 over one second
    assert expected == tally.peak_rate


def test_rows_read_and_not_audited_are_unsent_unless_skipped_or_unanswered() -> None:
    """20 read: 12 audited, 3 skipped, 2 unanswered; the other 3 were never sent."""
    tally = Tally()
    tally.read, tally.skipped, tally.unanswered, tally.requests = 20, 3, 2, 14
    for _ in range(12):
        tally.settle(Result(Outcome.DELETED, 200))
    expected = {
        "status": RunStatus.INTERRUPTED,
        "unsent": 3,
        "unread": 10,
        "read": 20,
        "fatal": (None, None),
        "peak_rate": 14.0,  # never sampled: a run under a second sent all in one second
    }
    assert expected == summary_of(tally, status=RunStatus.INTERRUPTED, total=30)


def test_rows_never_read_are_unknown_without_a_total() -> None:
    """A library run stopped early over an iterable of unknown length cannot count the rest;
    one that read its input to the end left nothing unread."""
    stopped, ended = Tally(), Tally()
    ended.read_all = True
    expected = (None, 0)
    assert expected == (summary_of(stopped)["unread"], summary_of(ended)["unread"])


def test_an_audit_failure_or_a_fatal_answer_is_the_summary_s_reason() -> None:
    """An audit that took no more lines makes the run audit_failed, with its message;
    otherwise a fatal answer's code and message are the reason."""
    fatal = Answer(403, "AUTH_ERR_NO_ACCESS", "no access")
    failed = summary_of(Tally(), fatal=fatal, audit_failure="disk full")
    aborted = summary_of(Tally(), status=RunStatus.ABORTED, fatal=fatal)
    expected = (
        (RunStatus.AUDIT_FAILED, ("AUTH_ERR_NO_ACCESS", "disk full")),
        (RunStatus.ABORTED, ("AUTH_ERR_NO_ACCESS", "no access")),
    )
    assert expected == ((failed["status"], failed["fatal"]), (aborted["status"], aborted["fatal"]))
