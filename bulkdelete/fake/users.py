"""The fake's users: who exists, in which state, and the users file that says so.

A user is *active*, *deactivated* or *removed*; a UID that was never a user is *absent*. At the
start, the UIDs ``users`` lists are active (every UID, with ``all_exist``) and those
``deactivated`` lists are deactivated; UIDs are matched lowercased. Every change the API applies
since (deactivated, removed, reactivated) is recorded in ``FakeStats.applied``: the stats are the
one place that state is kept, so what a test reads is what the endpoints see.
"""

from __future__ import annotations

import csv
import heapq
import io
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bulkdelete.fake.config import FakeConfig
from bulkdelete.fake.stats import FakeStats

__all__ = ["ABSENT", "ACTIVE", "DEACTIVATED", "REMOVED", "Users", "load_users"]


ACTIVE = "active"
DEACTIVATED = "deactivated"
REMOVED = "removed"
ABSENT = "absent"
_REACTIVATED = "reactivated"  # as ``applied`` records a reactivation: active again


class Users:
    """Each user's state, over the configured users and the stats' ``applied``."""

    def __init__(self, config: FakeConfig, stats: FakeStats, *, created_at: int) -> None:
        self._listed = config.users or frozenset()
        self._deactivated = config.deactivated or frozenset()
        self._all_exist = config.all_exist
        self._applied = stats.applied
        self._created_at = created_at

    def state(self, uid: str) -> str:
        """Return the state of ``uid`` (lowercased): ``ACTIVE``, ``DEACTIVATED``, ``REMOVED``
        or ``ABSENT``."""
        applied = self._applied.get(uid)
        if applied is not None:
            return ACTIVE if applied == _REACTIVATED else applied
        if uid in self._deactivated:
            return DEACTIVATED
        return ACTIVE if self._all_exist or uid in self._listed else ABSENT

    def is_active(self, uid: str) -> bool:
        """Return whether ``uid`` (lowercased) is an active user."""
        return self.state(uid) == ACTIVE

    def delete(self, uid: str, *, permanent: bool) -> None:
        """Make a user removed (``permanent``) or deactivated."""
        self._applied[uid] = REMOVED if permanent else DEACTIVATED

    def reactivate(self, uid: str) -> None:
        """Make a deactivated user active again."""
        self._applied[uid] = _REACTIVATED

    def first_active(self, count: int) -> tuple[list[str], int]:
        """Return the ``count`` smallest active listed UIDs and how many listed users are active.

        A full scan, but only for the rare credential check: DELETEs stay O(1).
        """
        active = [uid for uid in self._listed | self._deactivated if self.is_active(uid)]
        return heapq.nsmallest(count, active), len(active)

    def record(self, uid: str) -> dict[str, Any]:
        """Return the API's JSON record of user ``uid``."""
        return {
            "uid": uid,
            "name": uid,
            "status": "offline",
            "role": "default",
            "createdAt": self._created_at,
        }


def load_users(path: Path) -> frozenset[str]:
    """Read lowercased UIDs: one per line, or a CSV whose header has a ``uid`` column (any case).

    A UTF-8 byte-order mark, CRLF line ends and blank lines are accepted.
    """
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    header = next(reader, [])
    rows: Iterable[list[str]] = reader
    names = [name.strip().lower() for name in header]
    if "uid" in names:
        column = names.index("uid")
    else:
        column = 0
        rows = itertools.chain([header], rows)
    uids = (row[column].strip().lower() for row in rows if len(row) > column)
    return frozenset(uid for uid in uids if uid)
