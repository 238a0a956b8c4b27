"""``FakeStats``: what the fake saw, served at ``GET /_fake/stats`` and read by ``fetch_stats``.

Timeline
    ``timeline`` counts, per whole second of the server clock since the start of the first rate
    window in use (or since the first counted request without a limit), our requests that passed
    the gate (``our_ok``, whatever the endpoint answered), ours refused by the window (``our_429``)
    and the live ones admitted or refused. With a whole-second ``window`` every window is a run of
    whole seconds of the timeline. Only the last ``_TIMELINE_SECONDS`` seconds with traffic are
    kept.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

from bulkdelete.fake.faults import Fault

__all__ = ["STATS", "STATS_PATH", "FakeStats", "fetch_stats"]

STATS_PATH = "/_fake/stats"
_TIMELINE_SECONDS = 3600
_TIMELINE_KEYS = ("our_ok", "our_429", "live_ok", "live_refused")


@dataclass(slots=True)
class FakeStats:
    """Live counters of what the fake saw; ``as_json()`` is what ``GET /_fake/stats`` returns.

    ``requests`` counts every request but the stats' own. ``deletes_by_uid`` counts DELETEs that
    reached the handler, whatever their answer, a bulk DELETE once for each UID it names;
    ``permanent_flags`` lists the valid ``permanent`` values received (false for a bulk one);
    ``applied`` is the state each changed user was left in (``deactivated``, ``removed``,
    ``reactivated``). ``bulk_calls`` counts the bulk calls past the gate, ``bulk_refused`` those
    refused for their size or body, ``reactivated`` the users reactivated. ``status_counts``
    counts answers actually sent (a reset or drop sends none); ``faults`` counts injected faults
    by kind and ``rejected_over_limit`` the 429s of the real window. ``live_sent`` counts the
    simulated live requests, ``live_refused`` those the window refused; ``timeline`` is described
    in the module docstring (its seconds become string keys in JSON), and ``timeline_start`` is
    the server clock's Unix time of its second 0.
    """

    requests: int = 0
    deletes_by_uid: dict[str, int] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)
    permanent_flags: dict[str, list[bool]] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((f.value for f in Fault), 0)
    )
    rejected_over_limit: int = 0
    unmatched_paths: int = 0
    bad_requests: int = 0
    bulk_calls: int = 0
    bulk_refused: int = 0
    reactivated: int = 0
    live_sent: int = 0
    live_refused: int = 0
    timeline_start: float | None = None
    timeline: dict[int, dict[str, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return the counters as JSON-ready values; status codes become string keys."""
        counters = {counter.name: getattr(self, counter.name) for counter in fields(self)}
        counters["status_counts"] = {str(code): n for code, n in sorted(self.status_counts.items())}
        counters["timeline"] = {str(second): dict(row) for second, row in self.timeline.items()}
        return counters

    def count_status(self, status: int) -> None:
        """Count one answer sent with ``status``."""
        self.status_counts[status] = self.status_counts.get(status, 0) + 1

    def record(self, kind: str, *, now: float, window_start: float | None) -> None:
        """Count one request of ``kind`` (one of ``_TIMELINE_KEYS``) at server time ``now``.

        ``window_start`` is when the first rate window in use opened (None without a limit).
        """
        if self.timeline_start is None:
            self.timeline_start = now if window_start is None else window_start
        second = int(now - self.timeline_start)
        row = self.timeline.get(second)
        if row is None:
            row = self.timeline[second] = dict.fromkeys(_TIMELINE_KEYS, 0)
            if len(self.timeline) > _TIMELINE_SECONDS:
                del self.timeline[next(iter(self.timeline))]  # seconds are inserted in order
        row[kind] += 1


STATS = web.AppKey("fake_stats", FakeStats)


def fetch_stats(base_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """Return a running fake's live counters (``GET /_fake/stats``), given its ``/v3`` base URL.

    A blocking read, for the tests and benches that watch a fake in another process.
    """
    root = base_url.removesuffix("/").removesuffix("/v3")
    with urllib.request.urlopen(root + STATS_PATH, timeout=timeout) as response:  # noqa: S310
        stats: dict[str, Any] = json.load(response)
    return stats
