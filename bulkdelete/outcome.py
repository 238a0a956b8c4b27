"""What an answer from CometChat means: the outcome vocabulary and the error-code taxonomy.

Only this module decides what an answer means. ``classify`` reads ``error.code`` first and the HTTP
status second, because CometChat sends some codes with surprising statuses (a bad API key may come
back as 404, which must never be mistaken for "user not found").

A 2xx status is not proof. Proxies, captive portals and mock servers answer 200 with an HTML page,
an empty body or an error object, so a 2xx counts only when its body says what was asked for
happened (``confirms``): for a DELETE the documented ``{"data": {"success": true}}`` or, for a
soft delete, the UID in ``data.deactivatedUids``; for a read, the user; for the credential
check, a list of users. Any other 2xx may still have changed something, so it is retried.

The bulk calls (``DELETE /users`` with ``uidsToDeactivate``, ``PUT /users`` with
``uidsToActivate``) answer 200 with a list per state, each left out when empty; a 2xx counts
when its ``data`` is an object, and then each UID sent is read from the lists (``listed``):
deactivated now, already deactivated, not found, reactivated, or not deactivated. A UID that no
list names is not accounted for: a failure, retried as a request that may have applied (both
calls are idempotent), never ``deleted``. An already deactivated user is a final state of its own
(``already_deactivated``): the user is deactivated, but not by this call. In a permanent run the
bulk call is a probe that tells a not-found UID's two meanings apart (``probed``): absent, or
deactivated and so not erased, which is a failure (``DEACTIVATED_NOT_ERASED``) until it is erased.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bulkdelete.answer import BULK_CALLS, Answer, Body, BodyKind, Call, RateInfo

# What an answer is (``answer``) is re-exported: callers name it with what it means, from here.
__all__ = ["BULK_CALLS", "Answer", "Body", "BodyKind", "Call", "RateInfo"]


class Outcome(enum.StrEnum):
    """The final state of one input row, as the audit records it."""

    DELETED = "deleted"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    # A bulk deactivation found the user deactivated already: final, but not this call's doing.
    ALREADY_DEACTIVATED = "already_deactivated"


# A final outcome settles its UID for good: no later run needs to send it again.
FINAL_OUTCOMES: Final = frozenset({Outcome.DELETED, Outcome.NOT_FOUND, Outcome.ALREADY_DEACTIVATED})
# The outcomes of rows that are never sent; they settle their row (file and line), not a UID.
ROW_ONLY_OUTCOMES: Final = frozenset({Outcome.INVALID, Outcome.DUPLICATE})


class Verdict(enum.Enum):
    """What the client should do with one answer."""

    DELETED = "deleted"  # the body confirms the call: deleted, or for a read or check, found
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
# An answer longer than the client reads (``api.MAX_ANSWER_BYTES``); it keeps its HTTP status.
TOO_LARGE = "ANSWER_TOO_LARGE"
# The audit's names for answers that prove nothing: a 2xx whose body does not confirm the delete,
# and a credential check answered by something other than CometChat's API.
UNCONFIRMED = "UNCONFIRMED_2XX"
NOT_THE_API = "NOT_THE_API"
# A permanent run's not-found UID that the bulk probe found deactivated: it exists, not erased.
DEACTIVATED_NOT_ERASED = "DEACTIVATED_NOT_ERASED"


class Probe(enum.StrEnum):
    """What the bulk probe found of a UID that a permanent DELETE answered not found."""

    ABSENT = "absent"  # listed in notFound: no such user
    DEACTIVATED = "deactivated"  # it exists, deactivated (or it was active, and the probe did it)


# Not frozen: one is made per answer, and a frozen one sets each field by ``object.__setattr__``
# (as ``pacing.Observation``). Nothing changes one once made.
@dataclass(slots=True)
class Result:
    """The fate of one input row: a value, never an exception."""

    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    message: str | None = None
    attempts: int = 0
    note: str | None = None
    probe: Probe | None = None  # a permanent run's not-found UID, as the bulk probe found it


def _is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300  # noqa: PLR2004  (the 2xx class)


def _same_uid(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def confirms(answer: Answer) -> bool:
    """Tell whether the body says that what the request asked for happened.

    Only a JSON object without an ``error`` can: ``success: true`` for a DELETE; for a soft
    delete also the UID in ``deactivatedUids`` (compared lowercased, as CometChat stores UIDs),
    which proves no erasure; the requested user for a read; a list of users for the check.
    """
    body = answer.body
    if body.kind is not BodyKind.OBJECT or body.error or answer.error_code is not None:
        return False
    if answer.call is Call.CHECK:
        return body.listing
    if answer.call is Call.READ:
        return _same_uid(body.user, answer.uid)
    if answer.call in BULK_CALLS:
        return body.data_object  # each UID is then read from the lists: see ``listed``
    if body.success is True:
        return True
    return answer.call is Call.DEACTIVATE and any(
        _same_uid(u, answer.uid) for u in body.deactivated
    )


def _transient(answer: Answer) -> bool:
    code, status = answer.error_code, answer.http_status
    return (
        code in TRANSIENT_CODES
        or code in TRANSIENT_TRANSPORT
        or status is None
        or status in RETRY_STATUSES
        or status >= 500  # noqa: PLR2004  (the 5xx class)
    )


def classify(answer: Answer) -> Verdict:  # noqa: PLR0911  (one return per rule, in order)
    """Decide what one answer means, by ``error.code`` first, then the body, then the status."""
    code, status = answer.error_code, answer.http_status
    if code in FATAL_CODES or code == TLS:
        return Verdict.FATAL
    if _is_2xx(status) and confirms(answer):
        return Verdict.DELETED
    if _transient(answer):
        return Verdict.RETRY
    if answer.call is Call.CHECK:
        # Not CometChat's list of users, and nothing a retry could fix: a wrong --base-url (a
        # 404 page), a redirect, a portal's HTML. Deleting through it would be worse.
        return Verdict.FATAL
    if _is_2xx(status) or code == TOO_LARGE:
        # Unproven. A DELETE may have acted all the same, so it asks again; a read is unknown.
        return Verdict.FAIL if answer.call is Call.READ else Verdict.RETRY
    if code == NOT_FOUND_CODE:
        return Verdict.NOT_FOUND
    if status in (401, 403) and code is None:
        # An auth rejection with no code still means the key is wrong for every request.
        return Verdict.FATAL
    return Verdict.FAIL


def may_have_applied(answer: Answer) -> bool:
    """Tell whether a request that got this answer could still have changed the user.

    No answer, a 5xx, an unproven 2xx, one too large to read, or aiohttp's own resend after a
    dropped connection: the server may have acted on it.
    """
    status = answer.http_status
    return (
        status is None
        or _is_2xx(status)
        or status >= 500  # noqa: PLR2004  (the 5xx class)
        or answer.error_code == TOO_LARGE
        or answer.sends > 1
    )


_BODY_WORDS = {
    BodyKind.NONE: "no body",
    BodyKind.EMPTY: "an empty body",
    BodyKind.OTHER_JSON: "JSON that is not an object",
    BodyKind.NOT_JSON: "a body that is not JSON",
}


def _what_the_body_said(answer: Answer) -> str:
    body = answer.body
    if answer.error_code == TOO_LARGE:
        return "a body too large to read"
    if body.kind is not BodyKind.OBJECT:
        return _BODY_WORDS[body.kind]
    if answer.error_code is not None or body.error:
        return f"error {answer.error_code}" if answer.error_code else "an error without a code"
    if body.success is False:
        return '"success": false'
    if answer.call in BULK_CALLS:
        return '"data" that is not an object of lists'
    named = any(_same_uid(u, answer.uid) for u in body.deactivated)
    return (
        'the UID in "deactivatedUids", which proves no permanent erasure'
        if named
        else 'neither "success": true nor the UID in "deactivatedUids"'
    )


def _unconfirmed(answer: Answer) -> tuple[str, str]:
    """Return the audit's code and reason for a 2xx that did not confirm a delete."""
    reason = f"HTTP {answer.http_status} with {_what_the_body_said(answer)}, not a confirmation"
    return UNCONFIRMED, f"{reason}: {answer.message}" if answer.message else reason


def fatal_cause(answer: Answer) -> Answer:
    """Return ``answer`` named for the summary and the audit, when it stops the run.

    A fatal code (or a TLS failure) names itself. A credential check that got anything else
    than CometChat's list of users is ``NOT_THE_API``, with what came instead.
    """
    if answer.error_code in FATAL_CODES or answer.error_code == TLS:
        return answer
    status = answer.http_status
    if status is not None and 300 <= status < 400:  # noqa: PLR2004  (the 3xx class)
        came = f"HTTP {status}, a redirect (never followed)"
    else:
        came = f"HTTP {status} with {_what_the_body_said(answer)}"
    message = (
        f"the credential check (GET /users?perPage=1) got {came}, not CometChat's list of "
        "users: check the base URL (it ends in /v3); nothing was deleted"
    )
    return dataclasses.replace(answer, error_code=NOT_THE_API, message=message)


class ReadBack(enum.StrEnum):
    """What reading a deleted user back says about it."""

    GONE = "gone"  # ERR_UID_NOT_FOUND: removed, or (CometChat does not tell) deactivated
    PRESENT = "present"  # the API still returns the user (a 2xx with the user in its body)
    UNKNOWN = "unknown"  # no usable answer (a 2xx without the user is not one)


def read_back_result(answer: Answer) -> ReadBack:
    """Decide what the final answer to ``GET /users/{uid}`` says about a deleted user."""
    verdict = classify(answer)
    if verdict is Verdict.NOT_FOUND:
        return ReadBack.GONE
    if verdict is Verdict.DELETED:  # a 2xx whose body is the user: the read found it
        return ReadBack.PRESENT
    return ReadBack.UNKNOWN


def final_result(
    answer: Answer,
    *,
    attempts: int,
    ambiguous_earlier: bool = False,
    verdict: Verdict | None = None,
) -> Result:
    """Turn the last answer for a UID into its audited result.

    ``ambiguous_earlier`` says an earlier send for this UID may have reached the server (no
    answer, a 5xx, an unproven 2xx, or aiohttp's own resend): a not-found after that is
    evidence it worked. A 2xx that never confirmed the delete is ``failed`` with the reason.
    ``verdict`` is ``classify(answer)`` when the caller has it already.
    """
    if verdict is None:
        verdict = classify(answer)
    code, message = answer.error_code, answer.message
    if verdict is Verdict.DELETED:
        outcome = Outcome.DELETED
    elif verdict is Verdict.NOT_FOUND:
        outcome = Outcome.NOT_FOUND
    else:
        outcome = Outcome.FAILED
        if verdict is Verdict.RETRY and _is_2xx(answer.http_status) and code != TOO_LARGE:
            code, message = _unconfirmed(answer)  # a fatal code keeps its name
    note = None
    if outcome is Outcome.NOT_FOUND and ambiguous_earlier:
        note = "an earlier request of this run probably deleted it"
    return Result(
        outcome=outcome,
        http_status=answer.http_status,
        error_code=code,
        message=message,
        attempts=attempts,
        note=note,
    )


class Listed(enum.Enum):
    """Where a bulk call's answer lists one UID it was sent."""

    DEACTIVATED = "deactivated"  # deactivatedUids: this call deactivated it
    ALREADY = "already"  # alreadyDeactivatedUids: it was deactivated before
    ABSENT = "absent"  # notFound
    REACTIVATED = "reactivated"  # reactivatedUids
    ACTIVE = "active"  # nonDeactivatedUids: it was active, a reactivation had nothing to do
    MISSING = "missing"  # in no list, or in two: not accounted for


def listed(answer: Answer, uids: Sequence[str]) -> list[Listed]:
    """Return where a confirmed bulk answer lists each of ``uids`` (compared lowercased)."""
    body = answer.body
    if answer.call is Call.BULK_REACTIVATE:
        lists = (
            (Listed.REACTIVATED, body.reactivated),
            (Listed.ACTIVE, body.not_deactivated),
            (Listed.ABSENT, body.not_found),
        )
    else:
        lists = (
            (Listed.DEACTIVATED, body.deactivated),
            (Listed.ALREADY, body.already_deactivated),
            (Listed.ABSENT, body.not_found),
        )
    where: dict[str, Listed] = {}
    for state, names in lists:
        for name in names:
            key = name.lower()
            where[key] = state if where.get(key, state) is state else Listed.MISSING
    return [where.get(uid.lower(), Listed.MISSING) for uid in uids]


def batch_result(
    state: Listed, answer: Answer, *, attempts: int, ambiguous_earlier: bool = False
) -> Result:
    """Return the row's result for a UID a bulk deactivation listed as ``state``.

    A UID no list named (``MISSING``, once retries ran out) is ``failed``: the answer did not
    account for it. ``ambiguous_earlier`` says an earlier send of it may have applied, so that
    "already deactivated" is most likely this run's own doing.
    """
    status = answer.http_status
    if state is Listed.DEACTIVATED:
        return Result(Outcome.DELETED, status, attempts=attempts)
    if state is Listed.ALREADY:
        note = (
            "an earlier request of this run probably deactivated it" if ambiguous_earlier else None
        )
        return Result(Outcome.ALREADY_DEACTIVATED, status, attempts=attempts, note=note)
    if state is Listed.ABSENT:
        return Result(Outcome.NOT_FOUND, status, attempts=attempts)
    message = f"HTTP {status} whose lists do not name the UID, not a confirmation"
    return Result(Outcome.FAILED, status, UNCONFIRMED, message, attempts=attempts)


def probed(not_found: Result, state: Listed) -> Result | None:
    """Return a permanent run's not-found result once the bulk probe listed its UID as
    ``state``; None when the probe did not account for it (the result stays as it was).

    Absent is final. Deactivated (or active, and so deactivated by the probe) is a failure: the
    user exists and is not erased, until it is reactivated and erased.
    """
    if state is Listed.ABSENT:
        note = "the bulk probe lists it in notFound: no such user"
        return dataclasses.replace(not_found, probe=Probe.ABSENT, note=note)
    if state is Listed.ALREADY:
        how = "lists it in alreadyDeactivatedUids"
    elif state is Listed.DEACTIVATED:
        how = "found it active and deactivated it (deactivatedUids)"
    else:
        return None
    return dataclasses.replace(
        not_found,
        outcome=Outcome.FAILED,
        error_code=DEACTIVATED_NOT_ERASED,
        message=f"the user exists, deactivated, and is not erased: the bulk probe {how}",
        note="--erase-deactivated reactivates and erases such users",
        probe=Probe.DEACTIVATED,
    )
