"""One answer from CometChat, reduced to facts: what the client read, before any decision.

``api`` builds an ``Answer`` per request (or per request that got no answer at all): the HTTP
status, ``error.code`` and message, the rate-limit headers, and the facts of the body that
decisions need (``Body``), never the server's text beyond them. What an answer *means* is for
``outcome`` to decide, which re-exports these names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class Call(enum.Enum):
    """What a request asked for, which decides what its 2xx answer must say."""

    DEACTIVATE = "deactivate"  # DELETE /users/{uid} with {"permanent": false}
    ERASE = "erase"  # DELETE /users/{uid} with {"permanent": true}
    READ = "read"  # GET /users/{uid}
    CHECK = "check"  # GET /users?perPage=1, the credential check
    BULK_DEACTIVATE = "bulk_deactivate"  # DELETE /users with {"uidsToDeactivate": [...]}
    BULK_REACTIVATE = "bulk_reactivate"  # PUT /users with {"uidsToActivate": [...]}

    # Members are singletons compared by identity: hashed as objects, in C, ``call in BULK_CALLS``
    # costs no Python call (Enum's own ``__hash__`` hashes the name in Python, on every answer).
    __hash__ = object.__hash__


BULK_CALLS: Final = frozenset({Call.BULK_DEACTIVATE, Call.BULK_REACTIVATE})


class BodyKind(enum.Enum):
    """What an answer's body turned out to be."""

    NONE = "none"  # no body was read: no answer at all, or one too large to read
    EMPTY = "empty"
    OBJECT = "object"  # a JSON object
    OTHER_JSON = "other_json"  # JSON, but not an object
    NOT_JSON = "not_json"  # an HTML page, truncated or invalid JSON, anything else


# Not frozen, for speed (see ``Answer``); hashable by value (``unsafe_hash``) so that the empty one
# can be ``Answer``'s default (``NO_BODY``). Nothing changes one once made.
@dataclass(slots=True, unsafe_hash=True)
class Body:
    """The facts of an answer's body that decisions need; never any of the server's text."""

    kind: BodyKind = BodyKind.NONE
    error: bool = False  # the object has an "error" member
    success: bool | None = None  # data.success, when it is a JSON boolean
    deactivated: tuple[str, ...] = ()  # the strings in data.deactivatedUids
    user: str | None = None  # data.uid: the body holds a user
    listing: bool = False  # data is a list, as GET /users answers
    # Read for the bulk calls only: data is an object, and the lists it holds besides
    # ``deactivated`` (each lowercased, as CometChat writes UIDs).
    data_object: bool = False
    already_deactivated: tuple[str, ...] = ()  # data.alreadyDeactivatedUids
    not_found: tuple[str, ...] = ()  # data.notFound
    reactivated: tuple[str, ...] = ()  # data.reactivatedUids
    not_deactivated: tuple[str, ...] = ()  # data.nonDeactivatedUids: they were active


# As ``Body``: not frozen, hashable so that the empty one can be ``Answer``'s default (``NO_RATE``).
@dataclass(slots=True, unsafe_hash=True)
class RateInfo:
    """The rate-limit facts one answer carried; ``None`` where the header was absent."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # unix time the current window ends
    retry_after: float | None = None  # seconds, from a 429's Retry-After
    server_date: float | None = None  # unix time of the Date header, read with the limit headers


NO_BODY: Final = Body()  # no body was read
NO_RATE: Final = RateInfo()  # no rate-limit header


# Not frozen: one is made per answer, and a frozen one sets each field by ``object.__setattr__``
# (as ``pacing.Observation``). Nothing changes one once made.
@dataclass(slots=True)
class Answer:
    """One attempt's answer, reduced to what decisions and the audit need."""

    http_status: int | None
    error_code: str | None = None
    message: str | None = None
    rate: RateInfo = NO_RATE
    sends: int = 1  # times aiohttp put the request on the wire; 2 means it resent it on its own
    call: Call = Call.DEACTIVATE
    uid: str | None = None  # the UID the request named, if it named one
    body: Body = NO_BODY
