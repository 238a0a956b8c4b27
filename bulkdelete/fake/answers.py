"""What the fake answers: the API's error body, and the 200s an applied DELETE may get.

Answers that prove nothing (the documents leave open what stands in front of the API)
    ``success_answer`` is the 200 a DELETE that was applied gets, by kind: ``documented`` (the
    success body), ``deactivated-uids`` (the other shape a soft delete may get), or one that
    proves nothing, as proxies and mock servers send them: ``html``, ``empty``,
    ``success-false``, ``invalid-json``, ``error-200`` (a 200 carrying ``ERR_UID_NOT_FOUND``) and
    ``huge`` (the success body padded to ``HUGE_ANSWER_BYTES``, streamed by
    ``stream_huge_answer`` in chunks, never built in memory). ``PORTAL_PAGE`` is what a captive
    portal answers to every request. ``bulk_answer`` is the 200 of an applied bulk call: its
    lists, or by the same kinds what proves nothing.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiohttp import web

__all__ = [
    "HUGE_ANSWER_BYTES",
    "PORTAL_PAGE",
    "SUCCESS_BODIES",
    "Body",
    "bulk_answer",
    "error_body",
    "stream_huge_answer",
    "success_answer",
]

# An answer's body: JSON (a dict), an HTML page (text) or raw bytes labelled as JSON.
Body: TypeAlias = dict[str, Any] | str | bytes

SUCCESS_BODIES = (
    "documented",
    "deactivated-uids",
    "html",
    "empty",
    "success-false",
    "invalid-json",
    "error-200",
    "huge",
)
HUGE_ANSWER_BYTES = 200_000_000
_HUGE_CHUNK = b"x" * 65536
PORTAL_PAGE = (
    "<!doctype html><html><head><title>Sign in</title></head>"
    "<body><form action=/login method=post>Sign in to use this network</form></body></html>"
)


def error_body(code: str, message: str) -> dict[str, Any]:
    """Return the API's error body for ``code``."""
    return {
        "error": {
            "code": code,
            "message": message,
            "devMessage": message,
            "source": "fake-cometchat",
            "details": {},
        }
    }


def success_answer(kind: str, uid: str, *, permanent: bool) -> Body:
    """Return the 200 body for an applied DELETE: JSON, HTML text, or raw bytes sent as JSON.

    ``huge`` is not built here: see ``stream_huge_answer``.
    """
    documented = {
        "data": {"success": True, "message": f"User with {uid} has been deleted successfully."}
    }
    bodies: dict[str, Body] = {
        "documented": documented,
        # CometChat's own API tests see this shape for a soft delete only.
        "deactivated-uids": documented if permanent else {"data": {"deactivatedUids": [uid]}},
        "html": "<html><body><h1>OK</h1></body></html>",
        "empty": b"",
        "success-false": {"data": {"success": False, "message": "Failed to delete the user."}},
        "invalid-json": b'{"data": {"success": tr',
        "error-200": error_body("ERR_UID_NOT_FOUND", f"The UID {uid} does not exist."),
    }
    return bodies[kind]


def bulk_answer(kind: str, lists: dict[str, list[str]]) -> Body:
    """Return the 200 body of an applied bulk call: ``{"data": {...}}`` with each of ``lists``
    left out when empty, as CometChat documents it; the kinds that prove nothing as for a DELETE.

    ``huge`` is not built here: see ``stream_huge_answer``.
    """
    if kind in ("documented", "deactivated-uids"):
        return {"data": {name: uids for name, uids in lists.items() if uids}}
    first = next((uid for uids in lists.values() for uid in uids), "")
    return success_answer(kind, first, permanent=False)


async def stream_huge_answer(
    request: web.BaseRequest, headers: dict[str, str], *, size: int = HUGE_ANSWER_BYTES
) -> web.StreamResponse:
    """Stream a success body of about ``size`` bytes without a length, as chunks.

    A client that stops reading and hangs up ends the stream early, quietly.
    """
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    await response.prepare(request)
    head, tail = b'{"data": {"success": true, "message": "', b'"}}'
    try:
        await response.write(head)
        for _ in range((size - len(head) - len(tail)) // len(_HUGE_CHUNK)):
            await response.write(_HUGE_CHUNK)
        await response.write(tail)
        await response.write_eof()
    except ConnectionError:
        pass  # the client hung up: the rest is not wanted
    return response
