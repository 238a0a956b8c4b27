"""The per-user endpoints: ``DELETE`` and ``GET /v3/users/{uid}``, ``GET /v3/users?perPage=N``.

``DELETE /v3/users/{uid}`` with ``{"permanent": false}``, no body or no such key makes an active
user *deactivated*; ``{"permanent": true}`` makes it *removed*, and a deactivated one too, as
CometChat's own API tests show (with ``deactivated_not_found``, the mode the documents leave open,
it answers ``404 ERR_UID_NOT_FOUND`` instead). A ``permanent`` that is not a JSON boolean is
``400 ERR_BAD_REQUEST``. Any other DELETE or GET of a user that is not active is
``404 ERR_UID_NOT_FOUND``: CometChat answers so for deactivated users too. ``success_body`` picks
the 200 an applied DELETE gets (``answers.success_answer``). ``GET /v3/users?perPage=N`` lists up
to N active users of ``users``, smallest UIDs first.

Like every endpoint module, it hands ``serving.build_app`` its routes.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from aiohttp import web

from bulkdelete.fake.answers import error_body, stream_huge_answer, success_answer
from bulkdelete.fake.gate import Applied, Gate
from bulkdelete.fake.users import DEACTIVATED, Users

__all__ = ["UserEndpoints"]

_MAX_PER_PAGE = 1000


def _uid_not_found(uid: str) -> dict[str, Any]:
    return error_body("ERR_UID_NOT_FOUND", f"The UID {uid} does not exist.")


def _permanent(raw: bytes) -> bool | None:
    """Return the body's ``permanent`` flag, False when absent, None when the body is invalid."""
    if not raw.strip():
        return False
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    permanent = body.get("permanent", False)
    return permanent if isinstance(permanent, bool) else None


def _per_page(text: str) -> int | None:
    if not text.isdigit():
        return None
    per_page = int(text)
    return per_page if 1 <= per_page <= _MAX_PER_PAGE else None


class UserEndpoints:
    """The handlers of one user's calls and of the user list."""

    def __init__(self, gate: Gate, users: Users) -> None:
        self._gate = gate
        self._users = users
        self._stats = gate.stats
        self._success_body = gate.config.success_body
        self._erases_deactivated = not gate.config.deactivated_not_found

    def routes(self) -> list[web.RouteDef]:
        """Return this module's routes."""
        return [
            web.delete("/v3/users/{uid}", self.delete_user),
            web.get("/v3/users/{uid}", self.get_user, allow_head=False),
            web.get("/v3/users", self.list_users, allow_head=False),
        ]

    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        uid = request.match_info["uid"].lower()
        stats.deletes_by_uid[uid] = stats.deletes_by_uid.get(uid, 0) + 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            headers, refusal = self._gate.admit(request, deleting=True)
            if refusal is not None:
                return await self._gate.reply(*refusal, headers)
            return await self._gate.with_faults(
                request,
                headers,
                work=functools.partial(self._delete, request, uid),
                answer=functools.partial(self._answer, request, headers),
            )
        finally:
            stats.in_flight -= 1

    async def _answer(
        self, request: web.Request, headers: dict[str, str], applied: Applied
    ) -> web.StreamResponse:
        """Send what an applied DELETE ended with; a ``huge`` 200 is streamed, never built."""
        status, body = applied
        if status == 200 and self._success_body == "huge":  # noqa: PLR2004
            self._stats.count_status(status)
            return await stream_huge_answer(request, headers)
        return await self._gate.reply(status, body, headers)

    async def _delete(self, request: web.Request, uid: str) -> Applied:
        permanent = _permanent(await request.read())
        if permanent is None:
            self._stats.bad_requests += 1
            message = 'The body must be a JSON object whose "permanent" is a boolean.'
            return 400, error_body("ERR_BAD_REQUEST", message)
        self._stats.permanent_flags.setdefault(uid, []).append(permanent)
        erasable = permanent and self._erases_deactivated
        if not self._users.is_active(uid) and not (
            erasable and self._users.state(uid) == DEACTIVATED
        ):
            return 404, _uid_not_found(uid)
        self._users.delete(uid, permanent=permanent)
        kind = self._success_body
        return 200, success_answer(
            "documented" if kind == "huge" else kind, uid, permanent=permanent
        )

    async def get_user(self, request: web.Request) -> web.StreamResponse:
        headers, refusal = self._gate.admit(request, deleting=False)
        if refusal is not None:
            return await self._gate.reply(*refusal, headers)
        uid = request.match_info["uid"].lower()
        if not self._users.is_active(uid):
            return await self._gate.reply(404, _uid_not_found(uid), headers)
        return await self._gate.reply(200, {"data": self._users.record(uid)}, headers)

    async def list_users(self, request: web.Request) -> web.StreamResponse:
        headers, refusal = self._gate.admit(request, deleting=False)
        if refusal is not None:
            return await self._gate.reply(*refusal, headers)
        per_page = _per_page(request.query.get("perPage", "100"))
        if per_page is None:
            self._stats.bad_requests += 1
            message = f"perPage must be a whole number from 1 to {_MAX_PER_PAGE}."
            return await self._gate.reply(400, error_body("ERR_BAD_REQUEST", message), headers)
        page, total = self._users.first_active(per_page)
        pagination = {
            "total": total,
            "count": len(page),
            "per_page": per_page,
            "current_page": 1,
            "total_pages": max(1, math.ceil(total / per_page)),
        }
        body = {
            "data": [self._users.record(uid) for uid in page],
            "meta": {"pagination": pagination},
        }
        return await self._gate.reply(200, body, headers)
