"""What an answer means: ``classify`` (code, body, status), ``final_result``, ``fatal_cause``."""

from __future__ import annotations

import pytest

from bulkdelete.outcome import (
    CONNECTION,
    DEACTIVATED_NOT_ERASED,
    FINAL_OUTCOMES,
    NOT_THE_API,
    TIMEOUT,
    TLS,
    TOO_LARGE,
    UNCONFIRMED,
    Answer,
    Body,
    BodyKind,
    Call,
    Listed,
    Outcome,
    Probe,
    ReadBack,
    Result,
    Verdict,
    batch_result,
    classify,
    fatal_cause,
    final_result,
    listed,
    may_have_applied,
    probed,
    read_back_result,
)

NO_BODY = Body()
SUCCESS = Body(BodyKind.OBJECT, success=True)
DONE = Answer(200, body=SUCCESS, uid="alice")  # the documented success answer to a DELETE

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


@pytest.mark.parametrize("status", [404, 400])
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
def test_a_2xx_that_says_success_means_deleted(status: int) -> None:
    """A 2xx whose body says success: true means the user was deleted."""
    assert Verdict.DELETED is classify(Answer(status, body=SUCCESS))


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
        (DONE, Outcome.DELETED),
        (Answer(404, "ERR_UID_NOT_FOUND", "gone"), Outcome.NOT_FOUND),
        (Answer(503, None, "unavailable"), Outcome.FAILED),  # retries gave up
        (Answer(None, TIMEOUT, "TimeoutError"), Outcome.FAILED),
        (Answer(400, "ERR_BAD_REQUEST", "bad"), Outcome.FAILED),
        (Answer(403, "AUTH_ERR_NO_ACCESS", "no access"), Outcome.FAILED),
        (Answer(200, "AUTH_ERR_NO_ACCESS", "no access"), Outcome.FAILED),
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
    [DONE, Answer(503), Answer(400, "ERR_BAD_REQUEST")],
    ids=["deleted", "gave-up", "bad-request"],
)
def test_final_result_has_no_note_unless_not_found(answer: Answer) -> None:
    """The ambiguity note is only for not_found: other outcomes never carry it."""
    assert None is final_result(answer, attempts=2, ambiguous_earlier=True).note


# --- a 2xx is not proof ---------------------------------------------------------------------

UNPROVEN_2XX = {
    "no-body": Answer(200, uid="alice"),
    "empty": Answer(200, uid="alice", body=Body(BodyKind.EMPTY)),
    "html": Answer(200, uid="alice", body=Body(BodyKind.NOT_JSON)),
    "json-list": Answer(200, uid="alice", body=Body(BodyKind.OTHER_JSON)),
    "success-false": Answer(200, uid="alice", body=Body(BodyKind.OBJECT, success=False)),
    "no-success": Answer(200, uid="alice", body=Body(BodyKind.OBJECT)),
    "error-200": Answer(
        200,
        "ERR_UID_NOT_FOUND",
        "no such user",
        uid="alice",
        body=Body(BodyKind.OBJECT, error=True),
    ),
    "success-and-error": Answer(
        200, uid="alice", body=Body(BodyKind.OBJECT, error=True, success=True)
    ),
    "other-uid": Answer(200, uid="alice", body=Body(BodyKind.OBJECT, deactivated=("bob",))),
    "erase-deactivated": Answer(
        200, uid="alice", call=Call.ERASE, body=Body(BodyKind.OBJECT, deactivated=("alice",))
    ),
}


@pytest.mark.parametrize("answer", UNPROVEN_2XX.values(), ids=UNPROVEN_2XX.keys())
def test_a_2xx_whose_body_does_not_confirm_is_retried_as_may_have_applied(answer: Answer) -> None:
    """HTML, empty, success false, an error object, another UID: retried, and it may have acted."""
    expected = (Verdict.RETRY, True)
    assert expected == (classify(answer), may_have_applied(answer))


@pytest.mark.parametrize("listed", ["alice", "ALICE", "Alice"])
def test_a_soft_delete_is_confirmed_by_the_uid_in_deactivated_uids(listed: str) -> None:
    """{"data": {"deactivatedUids": [uid]}} confirms a soft delete, the UID compared lowercased."""
    answer = Answer(200, uid="alice", body=Body(BodyKind.OBJECT, deactivated=("bob", listed)))
    assert Verdict.DELETED is classify(answer)


@pytest.mark.parametrize("answer", UNPROVEN_2XX.values(), ids=UNPROVEN_2XX.keys())
def test_an_unconfirmed_2xx_that_runs_out_of_retries_is_failed_with_its_reason(
    answer: Answer,
) -> None:
    """The audit says failed, UNCONFIRMED_2XX, and what the body said instead."""
    result = final_result(answer, attempts=6)
    assert result.message is not None
    expected = (Outcome.FAILED, 200, UNCONFIRMED, True)
    assert expected == (
        result.outcome,
        result.http_status,
        result.error_code,
        result.message.startswith("HTTP 200 with "),
    )


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (UNPROVEN_2XX["html"], "a body that is not JSON"),
        (UNPROVEN_2XX["empty"], "an empty body"),
        (UNPROVEN_2XX["success-false"], '"success": false'),
        (UNPROVEN_2XX["error-200"], "error ERR_UID_NOT_FOUND, not a confirmation: no such user"),
        (UNPROVEN_2XX["success-and-error"], "an error without a code"),
        (UNPROVEN_2XX["erase-deactivated"], "proves no permanent erasure"),
        (UNPROVEN_2XX["other-uid"], 'nor the UID in "deactivatedUids"'),
    ],
    ids=["html", "empty", "success-false", "error-200", "error-no-code", "erase", "other-uid"],
)
def test_the_reason_says_what_the_body_said(answer: Answer, words: str) -> None:
    """The reason names the body's kind, its code and message, or what it lacked."""
    message = final_result(answer, attempts=1).message
    assert message is not None
    assert words in message


def test_an_answer_too_large_to_read_is_retried_and_may_have_applied() -> None:
    """An oversized answer proves nothing; it is retried and counts as ambiguous."""
    answer = Answer(200, TOO_LARGE, "too long", uid="alice")
    result = final_result(answer, attempts=2)
    expected = (Verdict.RETRY, True, Outcome.FAILED, TOO_LARGE, "too long")
    assert expected == (
        classify(answer),
        may_have_applied(answer),
        result.outcome,
        result.error_code,
        result.message,
    )


@pytest.mark.parametrize(
    ("answer", "applied"),
    [
        (Answer(429, "ERR_TOO_MANY_REQUESTS"), False),
        (Answer(404, "ERR_UID_NOT_FOUND"), False),
        (Answer(307), False),
        (Answer(400, "ERR_BAD_REQUEST"), False),
        (Answer(404, TOO_LARGE), True),
        (Answer(404, "ERR_UID_NOT_FOUND", sends=2), True),
    ],
    ids=["429", "404", "307", "400", "too-large", "resent"],
)
def test_what_may_have_applied(answer: Answer, applied: bool) -> None:
    """Refusals did nothing; an unread answer or aiohttp's own resend may have."""
    assert applied is may_have_applied(answer)


# --- read-back and the credential check ------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        (Answer(200, call=Call.READ, uid="alice", body=Body(BodyKind.OBJECT, user="Alice")), "p"),
        (Answer(200, call=Call.READ, uid="alice", body=Body(BodyKind.OBJECT, user="bob")), "u"),
        (Answer(200, call=Call.READ, uid="alice", body=Body(BodyKind.NOT_JSON)), "u"),
        (Answer(200, call=Call.READ, uid="alice", body=Body(BodyKind.OBJECT)), "u"),
        (Answer(404, "ERR_UID_NOT_FOUND", call=Call.READ, uid="alice"), "g"),
    ],
    ids=["user", "other-user", "html", "no-user", "not-found"],
)
def test_a_read_is_present_only_with_the_user_in_the_body(answer: Answer, result: str) -> None:
    """A 2xx GET without a JSON user body (the one asked for) is unknown, not present."""
    names = {"p": ReadBack.PRESENT, "u": ReadBack.UNKNOWN, "g": ReadBack.GONE}
    assert names[result] is read_back_result(answer)


def test_a_read_whose_2xx_proves_nothing_is_not_retried() -> None:
    """A read changes nothing, so an HTML 200 is final (unknown) at once, not asked six times."""
    answer = Answer(200, call=Call.READ, uid="alice", body=Body(BodyKind.NOT_JSON))
    assert Verdict.FAIL is classify(answer)


def check(status: int | None, code: str | None = None, body: Body = NO_BODY) -> Answer:
    """Return an answer to the credential check."""
    return Answer(status, code, call=Call.CHECK, body=body)


def test_the_credential_check_passes_on_a_list_of_users() -> None:
    """GET /users?perPage=1 answered with {"data": [...]} is CometChat's API."""
    assert Verdict.DELETED is classify(check(200, body=Body(BodyKind.OBJECT, listing=True)))


WRONG_PLACES = {
    "404-page": check(404, "ERR_NOT_FOUND", Body(BodyKind.OBJECT, error=True)),
    "404-no-code": check(404, body=Body(BodyKind.NOT_JSON)),
    "301": check(301),
    "302": check(302),
    "307": check(307),
    "308": check(308),
    "portal-html": check(200, body=Body(BodyKind.NOT_JSON)),
    "empty": check(200, body=Body(BodyKind.EMPTY)),
    "not-a-list": check(200, body=Body(BodyKind.OBJECT, success=True)),
    "too-large": check(200, TOO_LARGE),
    "400": check(400, "ERR_BAD_REQUEST", Body(BodyKind.OBJECT, error=True)),
}


@pytest.mark.parametrize("answer", WRONG_PLACES.values(), ids=WRONG_PLACES.keys())
def test_a_credential_check_answered_by_something_else_is_fatal(answer: Answer) -> None:
    """A 404 page, a redirect, HTML or any JSON but a list of users: fatal, named NOT_THE_API."""
    cause = fatal_cause(answer)
    assert cause.message is not None
    expected = (Verdict.FATAL, NOT_THE_API, True)
    assert expected == (classify(answer), cause.error_code, "check the base URL" in cause.message)


def test_the_fatal_cause_of_a_redirect_says_it_was_not_followed() -> None:
    """A 3xx on the credential check is named a redirect."""
    message = fatal_cause(check(307)).message or ""
    assert "HTTP 307, a redirect (never followed)" in message


@pytest.mark.parametrize(
    "answer",
    [
        check(429, "ERR_TOO_MANY_REQUESTS"),
        check(503),
        check(None, TIMEOUT),
        check(None, CONNECTION),
    ],
    ids=["429", "503", "timeout", "connection"],
)
def test_a_credential_check_that_got_no_usable_answer_is_retried(answer: Answer) -> None:
    """Throttling, 5xx and transport failures on the check are retried, not fatal."""
    assert Verdict.RETRY is classify(answer)


def test_a_fatal_code_is_its_own_cause() -> None:
    """A bad key on the check is named by its code, not NOT_THE_API."""
    answer = check(404, "AUTH_ERR_APIKEY_NOT_FOUND", Body(BodyKind.OBJECT, error=True))
    assert answer == fatal_cause(answer)


# --- the bulk calls ------------------------------------------------------------------------------

LISTS = Body(
    BodyKind.OBJECT,
    data_object=True,
    deactivated=("ann",),
    already_deactivated=("BO",),
    not_found=("cy",),
)
BULK = Answer(200, call=Call.BULK_DEACTIVATE, body=LISTS)


def test_listed_reads_each_uid_from_its_list() -> None:
    """Each UID sent is found in its list, lowercased; one in no list is MISSING."""
    expected = [Listed.DEACTIVATED, Listed.ALREADY, Listed.ABSENT, Listed.MISSING]
    assert listed(BULK, ["ann", "bo", "cy", "dee"]) == expected


def test_a_uid_in_two_lists_is_not_accounted_for() -> None:
    """An answer that names a UID under two states says nothing sure of it."""
    body = Body(BodyKind.OBJECT, data_object=True, deactivated=("a",), not_found=("a",))
    assert listed(Answer(200, call=Call.BULK_DEACTIVATE, body=body), ["a"]) == [Listed.MISSING]


def test_a_reactivation_is_read_from_its_own_lists() -> None:
    """PUT /users answers reactivatedUids, nonDeactivatedUids, notFound; deactivatedUids in it
    means nothing."""
    body = Body(
        BodyKind.OBJECT,
        data_object=True,
        reactivated=("a",),
        not_deactivated=("b",),
        not_found=("c",),
        deactivated=("d",),
    )
    answer = Answer(200, call=Call.BULK_REACTIVATE, body=body)
    expected = [Listed.REACTIVATED, Listed.ACTIVE, Listed.ABSENT, Listed.MISSING]
    assert listed(answer, ["a", "b", "c", "d"]) == expected


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        (Body(BodyKind.OBJECT, data_object=True), Verdict.DELETED),
        (Body(BodyKind.OBJECT), Verdict.RETRY),
        (Body(BodyKind.NOT_JSON), Verdict.RETRY),
        (Body(BodyKind.OBJECT, data_object=True, error=True), Verdict.RETRY),
    ],
    ids=["lists", "data-not-an-object", "html", "error"],
)
def test_a_bulk_2xx_counts_when_its_data_is_an_object(body: Body, verdict: Verdict) -> None:
    """Each UID is then read from the lists; anything else may have applied and is retried."""
    assert classify(Answer(200, call=Call.BULK_DEACTIVATE, body=body)) is verdict


def test_an_unconfirmed_bulk_2xx_names_what_it_lacked() -> None:
    """When its retries run out, such an answer is failed, saying what the body was."""
    answer = Answer(200, call=Call.BULK_DEACTIVATE, body=Body(BodyKind.OBJECT))
    result = final_result(answer, attempts=3)
    assert (result.outcome, result.error_code, result.message) == (
        Outcome.FAILED,
        UNCONFIRMED,
        'HTTP 200 with "data" that is not an object of lists, not a confirmation',
    )


@pytest.mark.parametrize(
    ("state", "ambiguous", "expected"),
    [
        (Listed.DEACTIVATED, False, (Outcome.DELETED, None, None)),
        (Listed.ALREADY, False, (Outcome.ALREADY_DEACTIVATED, None, None)),
        (
            Listed.ALREADY,
            True,
            (
                Outcome.ALREADY_DEACTIVATED,
                None,
                "an earlier request of this run probably deactivated it",
            ),
        ),
        (Listed.ABSENT, False, (Outcome.NOT_FOUND, None, None)),
        (Listed.MISSING, False, (Outcome.FAILED, UNCONFIRMED, None)),
    ],
)
def test_batch_result_of_each_list(
    state: Listed, ambiguous: bool, expected: tuple[object, ...]
) -> None:
    """Deactivated now is deleted; deactivated before is its own final outcome; a UID no list
    names is a failure, never deleted."""
    result = batch_result(state, BULK, attempts=2, ambiguous_earlier=ambiguous)
    assert (result.outcome, result.error_code, result.note) == expected
    assert (result.http_status, result.attempts) == (200, 2)


def test_already_deactivated_is_final() -> None:
    """A user found deactivated needs nothing more: no later run sends it again."""
    assert Outcome.ALREADY_DEACTIVATED in FINAL_OUTCOMES


NOT_FOUND = Result(Outcome.NOT_FOUND, 404, "ERR_UID_NOT_FOUND", "The UID x does not exist.", 1)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (Listed.ABSENT, (Outcome.NOT_FOUND, "ERR_UID_NOT_FOUND", Probe.ABSENT)),
        (Listed.ALREADY, (Outcome.FAILED, DEACTIVATED_NOT_ERASED, Probe.DEACTIVATED)),
        (Listed.DEACTIVATED, (Outcome.FAILED, DEACTIVATED_NOT_ERASED, Probe.DEACTIVATED)),
    ],
)
def test_probed_tells_absent_from_deactivated(state: Listed, expected: tuple[object, ...]) -> None:
    """Absent is final; deactivated (or active, and so deactivated by the probe) is not erased."""
    result = probed(NOT_FOUND, state)
    assert result is not None
    assert (result.outcome, result.error_code, result.probe) == expected
    assert (result.http_status, result.attempts) == (404, 1)


def test_a_probe_that_does_not_list_the_uid_changes_nothing() -> None:
    """The not-found result stays as the DELETE left it."""
    assert probed(NOT_FOUND, Listed.MISSING) is None
