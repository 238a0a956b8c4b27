"""What an answer from CometChat means: the outcome vocabulary and the error-code taxonomy.

Only this module decides what an answer means. ``classify`` reads ``error.code`` first and the HTTP
status second, because CometChat sends some codes with surprising statuses (a bad API key may come
back as 404, which must never be mistaken for "user not found").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    """The final state of one input row, as the audit records it."""

    DELETED = "deleted"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"


class Verdict(enum.Enum):
    """What the client should do with one answer."""

    DELETED = "deleted"
    NOT_FOUND = "not_found"
    RETRY = "retry"
    FAIL = "fail"
    FATAL = "fatal"


FATAL_CODES = frozenset(
    {
        "AUTH_ERR_EMPTY_APIKEY",
        "AUTH_ERR_APIKEY_NOT_FOUND",
        "AUTH_ERR_INVALID_APPID",
        "AUTH_ERR_NO_ACCESS",
        "ERR_PLAN_RESTRICTION",
        "ERR_SUBSCRIPTION_EXPIRED",
    }
)
TRANSIENT_CODES = frozenset({"ERR_TOO_MANY_REQUESTS", "ERR_MISSION_FAILED"})
NOT_FOUND_CODE = "ERR_UID_NOT_FOUND"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Transport failures are answers too, with no HTTP status; their names go into ``error_code``.
TIMEOUT = "TIMEOUT"
CONNECTION = "CONNECTION_ERROR"
TLS = "TLS_ERROR"
TRANSIENT_TRANSPORT = frozenset({TIMEOUT, CONNECTION})


@dataclass(frozen=True, slots=True)
class RateInfo:
    """The rate-limit facts one answer carried; ``None`` where the header was absent."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # unix time the current window ends
    retry_after: float | None = None  # seconds, from a 429's Retry-After
    server_date: float | None = None  # unix time of the Date header, read with the limit headers


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt's answer, reduced to what decisions and the audit need."""

    http_status: int | None
    error_code: str | None = None
    message: str | None = None
    rate: RateInfo = RateInfo()
    sends: int = 1  # times aiohttp put the request on the wire; 2 means it resent it on its own


@dataclass(frozen=True, slots=True)
class Result:
    """The fate of one input row: a value, never an exception."""

    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    message: str | None = None
    attempts: int = 0
    note: str | None = None


def classify(answer: Answer) -> Verdict:  # noqa: PLR0911  (one return per rule, in order)
    """Decide what one answer means, by ``error.code`` first and HTTP status second."""
    code, status = answer.error_code, answer.http_status
    if code in FATAL_CODES:
        return Verdict.FATAL
    if code == TLS:
        return Verdict.FATAL
    if code == NOT_FOUND_CODE:
        return Verdict.NOT_FOUND
    if code in TRANSIENT_CODES or code in TRANSIENT_TRANSPORT:
        return Verdict.RETRY
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:  # noqa: PLR2004  (the 2xx class)
        return Verdict.DELETED
    if status in RETRY_STATUSES or status >= 500:  # noqa: PLR2004  (the 5xx class)
        return Verdict.RETRY
    if status in (401, 403) and code is None:
        # An auth rejection with no code still means the key is wrong for every request.
        return Verdict.FATAL
    return Verdict.FAIL


class ReadBack(enum.StrEnum):
    """What reading a deleted user back says about it."""

    GONE = "gone"  # ERR_UID_NOT_FOUND: removed, or (CometChat does not tell) deactivated
    PRESENT = "present"  # the API still returns the user
    UNKNOWN = "unknown"  # no usable answer


def read_back_result(answer: Answer) -> ReadBack:
    """Decide what the final answer to ``GET /users/{uid}`` says about a deleted user."""
    verdict = classify(answer)
    if verdict is Verdict.NOT_FOUND:
        return ReadBack.GONE
    if verdict is Verdict.DELETED:  # a 2xx: the read found the user
        return ReadBack.PRESENT
    return ReadBack.UNKNOWN


def final_result(answer: Answer, *, attempts: int, ambiguous_earlier: bool = False) -> Result:
    """Turn the last answer for a UID into its audited result.

    ``ambiguous_earlier`` says an earlier send for this UID may have reached the server (no
    answer, a 5xx, or aiohttp's own resend): a not-found after that is evidence it worked.
    """
    verdict = classify(answer)
    if verdict is Verdict.DELETED:
        outcome = Outcome.DELETED
    elif verdict is Verdict.NOT_FOUND:
        outcome = Outcome.NOT_FOUND
    else:
        outcome = Outcome.FAILED
    note = None
    if outcome is Outcome.NOT_FOUND and ambiguous_earlier:
        note = "an earlier request of this run probably deleted it"
    return Result(
        outcome=outcome,
        http_status=answer.http_status,
        error_code=answer.error_code,
        message=answer.message,
        attempts=attempts,
        note=note,
    )
