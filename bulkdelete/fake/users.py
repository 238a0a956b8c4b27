"""The fake's users: who exists, in which state, and the users file that says so.

A UID is *active* when ``users`` lists it (or ``all_exist`` is set) and it has not been deleted;
UIDs are matched lowercased. A deleted user is *deactivated* or *removed*, as ``FakeStats.applied``
records it: the stats are the one place that state is kept, so what a test reads is what the
endpoints see.
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

__all__ = ["Users", "load_users"]


class Users:
    """Each user's state, over the configured users and the stats' ``applied``."""

    def __init__(self, config: FakeConfig, stats: FakeStats, *, created_at: int) -> None:
        self._listed = config.users or frozenset()
        self._all_exist = config.all_exist
        self._applied = stats.applied
        self._created_at = created_at

    def is_active(self, uid: str) -> bool:
        """Return whether ``uid`` (lowercased) exists and has not been deleted."""
        return uid not in self._applied and (self._all_exist or uid in self._listed)

    def delete(self, uid: str, *, permanent: bool) -> None:
        """Make an active user removed (``permanent``) or deactivated."""
        self._applied[uid] = "removed" if permanent else "deactivated"

    def first_active(self, count: int) -> tuple[list[str], int]:
        """Return the ``count`` smallest active listed UIDs and how many listed users are active.

        A full scan, but only for the rare credential check: DELETEs stay O(1).
        """
        active = [uid for uid in self._listed if uid not in self._applied]
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
