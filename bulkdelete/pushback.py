"""The server's pushback, and what it does to the whole run: 429s, an outage, refusals.

``Throttle``: once a second the rate is cut by half the share of answers that were 429s, and
it then regains 10% a second. Cutting in proportion to the 429s (not halving on each one) slows
a run that really overruns its limit (most answers refused) to half within a second or two,
while a server that refuses a few percent at random costs nothing lasting.

``Outage``: ``OUTAGE_THRESHOLD`` missing or 5xx answers in a row mean the server is down, not
unlucky. The pacer then pauses the whole run with a growing backoff and lets one probe through
at a time; an outage that lasts ``max_outage`` trips the breaker. No backoff runs past that
bound: the run must stop on time, not a backoff later.

``Refusals``: 429s and nothing else for ``max_outage`` trip it too. It is measured between
answers, so a run idle for a while is not a run refused.

Either breaker, once tripped, stays tripped; the pacer halts, which stops the run.
"""

from __future__ import annotations

OUTAGE_THRESHOLD = 8  # unavailable answers in a row that mean "down", not "unlucky"
_FIRST_PAUSE = 0.5
_MAX_PAUSE = 30.0
_RECOVERY_PER_SECOND = 0.1  # the rate regains 10% of itself per second
_INTERVAL = 1.0  # seconds between two adjustments for 429s
_MIN_FACTOR = 1 / 64


class Throttle:
    """The share of its rate the run keeps for the 429s it got (1.0: all of it)."""

    __slots__ = ("_adjusted_at", "_answers", "_throttled", "factor")

    def __init__(self, now: float) -> None:
        self.factor = 1.0
        self._adjusted_at = now
        self._answers = self._throttled = 0  # since the last adjustment

    def answered(self, *, throttled: bool) -> None:
        """Count one answer."""
        self._answers += 1
        self._throttled += throttled

    def adjust(self, now: float) -> float:
        """Return the factor, cut for the 429s and recovered for the time since, once a second."""
        elapsed = now - self._adjusted_at
        if elapsed >= _INTERVAL:
            share = self._throttled / self._answers if self._answers else 0
            recovery = (1 + _RECOVERY_PER_SECOND) ** elapsed
            self.factor = min(1.0, max(_MIN_FACTOR, self.factor * (1 - share / 2) * recovery))
            self._adjusted_at = now
            self._answers = self._throttled = 0
        return self.factor


class Outage:
    """Unavailable answers in a row, and since when the server has looked down."""

    __slots__ = ("_in_a_row", "_max_outage", "_pause", "since", "tripped")

    def __init__(self, max_outage: float) -> None:
        self._max_outage = max_outage
        self._in_a_row = 0
        self._pause = _FIRST_PAUSE  # the next backoff
        self.since: float | None = None  # when the outage began; None while the server answers
        self.tripped = False

    def answered(self, *, unavailable: bool, was_probe: bool, now: float) -> float | None:
        """Learn from one answer; return how long the run must pause now, or None."""
        if not unavailable:
            self._in_a_row = 0
            self.since = None
            self._pause = _FIRST_PAUSE
            return None
        self._in_a_row += 1
        if self._in_a_row < OUTAGE_THRESHOLD:
            return None
        if self.since is None:
            self.since = now
        elif not was_probe:
            return None  # requests sent before the outage was seen: only probes move the backoff
        if self.trips(now):
            return None
        pause = min(self._pause, self._max_outage - (now - self.since))
        self._pause = min(self._pause * 2, _MAX_PAUSE)
        return pause

    def trips(self, now: float) -> bool:
        """Tell whether the outage has lasted ``max_outage`` by ``now`` (or did before)."""
        if self.since is not None and now - self.since >= self._max_outage:
            self.tripped = True
        return self.tripped


class Refusals:
    """Since when every answer has been a 429."""

    __slots__ = ("_max_outage", "_since", "tripped")

    def __init__(self, max_outage: float) -> None:
        self._max_outage = max_outage
        self._since: float | None = None
        self.tripped = False

    def answered(self, *, throttled: bool, unavailable: bool, now: float) -> bool:
        """Learn from one answer; tell whether it trips the breaker."""
        if throttled:
            if self._since is None:
                self._since = now
            elif now - self._since >= self._max_outage:
                self.tripped = True
                return True
        elif not unavailable:
            self._since = None
        return False
