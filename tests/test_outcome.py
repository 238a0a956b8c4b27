"""What an answer means: ``classify`` (code first, status second) and ``final_result``."""

from __future__ import annotations

import pytest

from bulkdelete.outcome import (
    CONNECTION,
    TIMEOUT,
    TLS,
    Answer,
    Outcome,
    Result,
    Verdict,
    classify,
    final_result,
)

# The codes cometchat-api.md lists as "the whole run cannot succeed".
DOCUMENTED_FATAL_CODES = (
    "AUTH_ERR_EMPTY_APIKEY",
    "AUTH_ERR_APIKEY_NOT_FOUND",
    "AUTH_ERR_INVALID_APPID",
    "AUTH_ERR_NO_ACCESS",
    "ERR_PLAN_RESTRICTION",
    "ERR_SUBSCRIPTION_EXPIRED",
)
# Statuses a fatal code might plausibly arrive with, including ones that mean something else alone.
ANY_STATUS = (None, 200, 400, 401, 403, 404, 429, 500, 503)


@pytest.mark.parametrize("status", ANY_STATUS)
@pytest.mark.parametrize("code", DOCUMENTED_FATAL_CODES)
def test_every_fatal_code_is_fatal_whatever_the_status(code: str, status: int | None) -> None:
    """A fatal error code means FATAL whatever HTTP status came with it."""
    assert Verdict.FATAL is classify(Answer(status, code))


def test_bad_api_key_reported_as_404_is_fatal_not_not_found() -> None:
    """AUTH_ERR_APIKEY_NOT_FOUND with 404 is a bad key (FATAL), never a missing user."""
    assert Verdict.FATAL is classify(Answer(404, "AUTH_ERR_APIKEY_NOT_FOUND", "no such key"))


@pytest.mark.parametrize("status", [404, 400, 200])
def test_uid_not_found_code_means_not_found(status: int) -> None:
    """ERR_UID_NOT_FOUND means NOT_FOUND, decided by the code rather than the status."""
    assert Verdict.NOT_FOUND is classify(Answer(status, "ERR_UID_NOT_FOUND"))


@pytest.mark.parametrize("code", [None, "ERR_ROUTE_NOT_FOUND"])
def test_404_without_the_uid_code_is_a_failure(code: str | None) -> None:
    """A 404 without ERR_UID_NOT_FOUND is a plain failure, not proof the user is gone."""
    assert Verdict.FAIL is classify(Answer(404, code))


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, None),
        (429, "ERR_TOO_MANY_REQUESTS"),
        (408, None),
        (500, None),
        (502, None),
        (503, None),
        (504, None),
        (507, None),
        (500, "ERR_MISSION_FAILED"),
        (400, "ERR_MISSION_FAILED"),
        (None, TIMEOUT),
        (None, CONNECTION),
    ],
)
def test_transient_answers_are_retried(status: int | None, code: str | None) -> None:
    """429, 408, any 5xx, ERR_MISSION_FAILED, timeouts and connection errors mean RETRY."""
    assert Verdict.RETRY is classify(Answer(status, code))


def test_tls_error_is_fatal() -> None:
    """A TLS failure stops the run: every request to the same host would fail the same way."""
    assert Verdict.FATAL is classify(Answer(None, TLS, "certificate verify failed"))


@pytest.mark.parametrize("status", [200, 202, 204])
def test_2xx_means_deleted(status: int) -> None:
    """Any 2xx answer means the user was deleted."""
    assert Verdict.DELETED is classify(Answer(status))


@pytest.mark.parametrize(("status", "code"), [(400, "ERR_BAD_REQUEST"), (422, None), (409, None)])
def test_other_client_errors_fail_the_uid(status: int, code: str | None) -> None:
    """400 ERR_BAD_REQUEST and other 4xx are a final failure for that UID only."""
    assert Verdict.FAIL is classify(Answer(status, code))


@pytest.mark.parametrize("status", [401, 403])
def test_auth_status_without_code_is_fatal(status: int) -> None:
    """401/403 without a code still means the key is refused for every request."""
    assert Verdict.FATAL is classify(Answer(status))


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (Answer(200), Outcome.DELETED),
        (Answer(404, "ERR_UID_NOT_FOUND", "gone"), Outcome.NOT_FOUND),
        (Answer(503, None, "unavailable"), Outcome.FAILED),  # retries gave up
        (Answer(None, TIMEOUT, "TimeoutError"), Outcome.FAILED),
        (Answer(400, "ERR_BAD_REQUEST", "bad"), Outcome.FAILED),
        (Answer(403, "AUTH_ERR_NO_ACCESS", "no access"), Outcome.FAILED),
        (Answer(404), Outcome.FAILED),
    ],
)
def test_final_result_outcome(answer: Answer, outcome: Outcome) -> None:
    """The last answer maps to deleted / not_found / failed and keeps the server's details."""
    expected = Result(
        outcome=outcome,
        http_status=answer.http_status,
        error_code=answer.error_code,
        message=answer.message,
        attempts=3,
        note=None,
    )
    assert expected == final_result(answer, attempts=3)


def test_final_result_notes_a_not_found_after_an_ambiguous_attempt() -> None:
    """A not-found after an ambiguous earlier send carries a note; without one it does not."""
    answer = Answer(404, "ERR_UID_NOT_FOUND")
    noted = final_result(answer, attempts=2, ambiguous_earlier=True)
    plain = final_result(answer, attempts=2, ambiguous_earlier=False)
    expected = [(Outcome.NOT_FOUND, True), (Outcome.NOT_FOUND, False)]
    assert expected == [(result.outcome, bool(result.note)) for result in (noted, plain)]


@pytest.mark.parametrize(
    "answer",
    [Answer(200), Answer(503), Answer(400, "ERR_BAD_REQUEST")],
    ids=["deleted", "gave-up", "bad-request"],
)
def test_final_result_has_no_note_unless_not_found(answer: Answer) -> None:
    """The ambiguity note is only for not_found: other outcomes never carry it."""
    assert None is final_result(answer, attempts=2, ambiguous_earlier=True).note
