"""The bulk endpoints: ``DELETE /v3/users`` (``uidsToDeactivate``), ``PUT /v3/users``
(``uidsToActivate``).

``DELETE /v3/users`` with ``{"uidsToDeactivate": [...]}`` deactivates every active user it names
in one request of the window, and answers 200 even when none exists, with a list per state, each
left out when empty: ``deactivatedUids`` (deactivated now), ``alreadyDeactivatedUids``,
``notFound`` (absent or removed). ``PUT /v3/users`` with ``{"uidsToActivate": [...]}`` makes
deactivated users active: ``reactivatedUids``, ``nonDeactivatedUids`` (they were active),
``notFound``. UIDs are matched, and answered, lowercased; a UID named twice is answered once.

What the documents leave open is a flag: the largest list a call takes (``max_batch``; more is
``400 ERR_BAD_REQUEST``), the body size (``max_body``, the 10 KB CometChat documents for
request bodies; more is ``413``), and a 200 that names some UIDs in no list
(``bulk_unlisted_rate``, drawn from ``seed``: the call applied to them all the same). A body
that is not an object with a non-empty list of strings under the call's key is
``400 ERR_BAD_REQUEST``. Both calls go through the gate (key, window,
``revoke_key_after`` counting a bulk DELETE as one) and roll for faults as a DELETE does; their
UIDs count in ``deletes_by_uid`` (the bulk DELETE's, with ``permanent`` false) and the call in
``bulk_calls``; ``success_body`` applies as to a DELETE (``bulk_answer``).
"""

from __future__ import annotations

import functools
import json
import random
from typing import Any

from aiohttp import web

from bulkdelete.fake.answers import bulk_answer, error_body, stream_huge_answer
from bulkdelete.fake.gate import Applied, Gate, Refusal
from bulkdelete.fake.users import ABSENT, ACTIVE, DEACTIVATED, REMOVED, Users

__all__ = ["BulkEndpoints"]

_DEACTIVATE = "uidsToDeactivate"
_REACTIVATE = "uidsToActivate"


def _bad_request(message: str) -> Refusal:
    return 400, error_body("ERR_BAD_REQUEST", message)


class BulkEndpoints:
    """The handlers of the two bulk calls."""

    def __init__(self, gate: Gate, users: Users) -> None:
        self._gate = gate
        self._users = users
        self._stats = gate.stats
        self._config = gate.config
        self._rng = random.Random(gate.config.seed)  # noqa: S311 - reproducible test faults

    def routes(self) -> list[web.RouteDef]:
        """Return this module's routes."""
        return [
            web.delete("/v3/users", functools.partial(self._bulk, _DEACTIVATE)),
            web.put("/v3/users", functools.partial(self._bulk, _REACTIVATE)),
        ]

    async def _bulk(self, key: str, request: web.Request) -> web.StreamResponse:
        gate = self._gate
        headers, refusal = gate.admit(request, deleting=key == _DEACTIVATE)
        if refusal is not None:
            return await gate.reply(*refusal, headers)
        self._stats.bulk_calls += 1
        uids, refusal = await self._uids(request, key)
        if refusal is not None:
            self._stats.bulk_refused += 1
            return await gate.reply(*refusal, headers)
        work = self._deactivate if key == _DEACTIVATE else self._reactivate
        return await gate.with_faults(
            request,
            headers,
            work=functools.partial(work, uids),
            answer=functools.partial(self._answer, request, headers),
        )

    async def _uids(self, request: web.Request, key: str) -> tuple[list[str], Refusal | None]:
        """Return the UIDs a bulk call names, lowercased, each once; or why it is refused."""
        raw = await request.read()
        if len(raw) > self._config.max_body:
            message = f"The request body is larger than {self._config.max_body} bytes."
            return [], (413, error_body("ERR_BAD_REQUEST", message))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        named = body.get(key) if isinstance(body, dict) else None
        if not isinstance(named, list) or not named or not all(isinstance(u, str) for u in named):
            return [], _bad_request(
                f'The body must be {{"{key}": [UID, ...]}}, with a UID or more.'
            )
        if self._config.max_batch is not None and len(named) > self._config.max_batch:
            return [], _bad_request(f"{key} may hold at most {self._config.max_batch} UIDs.")
        return list(dict.fromkeys(uid.lower() for uid in named)), None

    async def _deactivate(self, uids: list[str]) -> Applied:
        lists: dict[str, list[str]] = {
            "deactivatedUids": [],
            "alreadyDeactivatedUids": [],
            "notFound": [],
        }
        stats, users = self._stats, self._users
        for uid in uids:
            stats.deletes_by_uid[uid] = stats.deletes_by_uid.get(uid, 0) + 1
            stats.permanent_flags.setdefault(uid, []).append(False)
            state = users.state(uid)
            if state == ACTIVE:
                users.delete(uid, permanent=False)
                lists["deactivatedUids"].append(uid)
            elif state == DEACTIVATED:
                lists["alreadyDeactivatedUids"].append(uid)
            else:
                lists["notFound"].append(uid)
        return 200, bulk_answer(self._config.success_body, self._unlisted(lists))

    def _unlisted(self, lists: dict[str, list[str]]) -> dict[str, list[str]]:
        """Leave out of the lists the UIDs ``bulk_unlisted_rate`` draws."""
        rate, draw = self._config.bulk_unlisted_rate, self._rng.random
        if not rate:
            return lists
        return {name: [uid for uid in uids if draw() >= rate] for name, uids in lists.items()}

    async def _reactivate(self, uids: list[str]) -> Applied:
        lists: dict[str, list[str]] = {
            "reactivatedUids": [],
            "notFound": [],
            "nonDeactivatedUids": [],
        }
        users = self._users
        for uid in uids:
            state = users.state(uid)
            if state == DEACTIVATED:
                users.reactivate(uid)
                self._stats.reactivated += 1
                lists["reactivatedUids"].append(uid)
            elif state in (REMOVED, ABSENT):
                lists["notFound"].append(uid)
            else:
                lists["nonDeactivatedUids"].append(uid)
        return 200, bulk_answer(self._config.success_body, self._unlisted(lists))

    async def _answer(
        self, request: web.Request, headers: dict[str, str], applied: Applied
    ) -> web.StreamResponse:
        status, body = applied
        if self._config.success_body == "huge":
            self._stats.count_status(status)
            return await stream_huge_answer(request, headers)
        return await self._gate.reply(status, body, headers)
