"""The rate-limit window as the answers reveal it: what is left, when it ends, who else spends it.

CometChat documents a fixed window per minute shared by every client of an app. A normal answer
carries only the limit and what remains "in the current minute"; a reset time (and Retry-After)
comes only with a 429, and every answer has a ``Date`` header. ``Budget`` learns from exactly
that, and a reset time whenever one comes. All times are the pacer's monotonic clock.

What it learns, and from what
    The window's end, as an interval ``(end_lo, end_hi]`` that always holds the truth:
    - a window holds every answer admitted in it, so it ends after the last request sent into it
      (``end_lo``) and no later than one window length after its first answer (``end_hi``);
    - **remaining jumping back up** marks a new window. Within one window remaining only falls:
      an answer can show more than the latest one only if some of our requests sent before it
      were admitted after it, so remaining up by at least the number of ours then in flight is a
      new window, whose boundary lies between the old window's last send and this answer;
    - **a reset time** (on a 429) bounds the end to the second it names; one in the past, or
      later than the longest window allows (``+86400``, ``1e300``), says nothing and is ignored;
    - the **window length** is 60 s as documented until the answers show less: two boundaries
      can be no closer than one window, and a window lasts at least as long as the answers in it;
    - the **server clock** from ``Date`` (whole seconds, made between sending and answering), so
      that the clock's minute can be tried as the boundary.
    Once the window has certainly ended (``end_hi``), nothing learned in it holds the rate down:
    the next window is planned as fresh until its first answer says otherwise.

    Other clients' use: remaining falls by their requests and ours. From the first answer of a
    window, whatever it lost beyond our own requests (counted by the pacer's ticket numbers) is
    theirs; spread over the time it took, per second, for the last two minutes. Their mean rate
    is expected for the rest of the window, and the most their use ran above that mean over any
    stretch (a burst) is kept in reserve.

What it plans: spend ``remaining - reserve - others' expected use until end_hi`` (and no more
than ``max_share`` of the limit in a window) by the window's end. The reserve is counted to the
latest possible end, so live traffic keeps its share whatever the true end; only our own pace
uses the earliest plausible end.

The phase, and a run restarted mid-window
    A new process knows neither where the window started nor how much of it the old process
    spent; the remaining count says how much is left, not since when. The safe horizon is the
    latest possible end, one window after the first answer, which would spend what is left over
    up to twice the time and leave up to half of that window unused. Instead it takes the server
    clock's minute (from ``Date``, not our clock) as a hypothesis and plans its own pace to end
    there, while the reserve for others stays counted to the latest end. If the hypothesis is
    wrong, the run has only spent its own share early and waits (probing once at the predicted
    boundary, then a few times a window) until the window really turns over: no live request is
    refused for it, because theirs was never spent. A boundary seen later confirms the
    hypothesis (from then on ends are the clock's minutes) or rejects it (ends follow the
    boundaries seen). So a restart on an aligned server uses the rest of its window at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bulkdelete.others import OthersUse
from bulkdelete.serverclock import Offset, Sighting

DOCUMENTED_WINDOW = 60.0  # "the number of requests remaining in the current minute"
_PRECISE = 1.5  # seconds: an end known this closely is planned to its earliest time
_FLOOR_SHARE = 0.005  # of the limit, always left: the slack for what the estimates miss
_GRID_TOLERANCE = 0.05  # seconds a boundary may sit off the clock's minute and still be on it
_MIN_PROBE_GAP = 1.0  # seconds between two probes of a spent window
_PROBES_PER_WINDOW = 20  # at most, while a spent window's end is not known
_MAX_ROLLS = 100  # windows skipped one by one after an idle spell; beyond, the phase is lost
_JUMP_SHARE = 0.01  # of the limit: how far above the latest remaining a new window must start
_SHORTEST_WINDOW = 1.0  # seconds: boundaries closer than this are believed a window apart
_WHOLE_SECONDS = 0.5  # a length known this closely, around a whole second, is that second


@dataclass(frozen=True, slots=True)
class Plan:
    """What the current window allows now."""

    spendable: float  # requests this run may still send in it
    horizon: float  # seconds to spend them in
    next_chance: float  # when a spent window may have been replaced (pacer clock)
    probe_gap: float  # seconds between probes while it is spent (inf: its end is known)


@dataclass(slots=True)
class _Window:
    """One rate-limit window as far as the answers show it."""

    first: int  # the first ticket that may belong to it
    latest: int  # the highest ticket answered in it (first - 1 before any answer)
    remaining: int  # what that answer said remains
    end_lo: float
    end_hi: float
    # The end's lower bound from boundaries and reset times only: end_lo also rises with every
    # request sent into the window, which says nothing of how much longer it lasts.
    known_lo: float = -math.inf
    first_received: float | None = None
    last_sent: float = -math.inf
    anchor: tuple[int, int] | None = None  # (ticket, remaining) others' use is counted from
    others: int = 0  # other clients' requests seen since the anchor
    seen_at: float = 0.0  # when others' use was last read


class Budget:
    """The current window and the clients sharing it; see the module docstring."""

    def __init__(self, *, max_share: float) -> None:
        self.limit: int | None = None
        self._share = max_share
        self._w_lo, self._w_hi = 0.0, DOCUMENTED_WINDOW  # bounds on the window's length
        self._offset = Offset()
        self._others = OthersUse()
        self._window: _Window | None = None
        self._boundary: tuple[float, float] | None = None  # the last boundary seen, (lo, hi]
        # Per grid length: whether windows turn on the server clock's grid (minutes for 60 s).
        self._verdicts: dict[float, bool] = {}
        self._grid_boundary: tuple[float, float] | None = None  # the last one seen on the grid

    @property
    def aligned(self) -> bool | None:
        """Whether windows turn on the server clock's grid: untested (None), yes, or no."""
        period = self._grid_period()
        return None if period is None else self._verdicts.get(period)

    def _judge(self, *, aligned: bool) -> None:
        period = self._grid_period()
        if period is not None:
            self._verdicts[period] = aligned

    @property
    def period(self) -> float:
        """The window's length as far as it is known (its longest possible until then)."""
        if self._w_hi - self._w_lo <= _PRECISE:
            return (self._w_lo + self._w_hi) / 2
        return self._w_hi

    def observe(self, seen: Sighting) -> None:
        """Learn from one answer that carried a limit and a remaining count."""
        self.limit = seen.limit
        self._offset.learn(seen)
        window = self._window
        if window is None:
            window = self._window = self._open(seen, end_lo=seen.sent, end_hi=math.inf)
        elif seen.ticket < window.first:
            return  # sent before this window was known to have begun: it belongs to an older one
        elif seen.ticket > window.latest and seen.remaining >= (
            # A counter shared by many servers may drift a little: only a clear rise counts.
            window.remaining + seen.in_flight_before + math.floor(_JUMP_SHARE * seen.limit)
        ):
            window = self._new_window(window, seen)
        else:
            self._add(window, seen)
        if seen.reset_at is not None:
            self._learn_reset(window, seen.reset_at)

    def _open(self, seen: Sighting, *, end_lo: float, end_hi: float) -> _Window:
        window = _Window(
            first=seen.ticket,
            latest=seen.ticket,
            remaining=seen.remaining,
            end_lo=max(end_lo, seen.sent),
            # It began by the time this answer came, so it ends within one window of that.
            end_hi=min(end_hi, seen.received + self._w_hi),
            known_lo=end_lo,
            first_received=seen.received,
            last_sent=seen.sent,
            seen_at=seen.received,
        )
        if seen.remaining > 0:
            window.anchor = (seen.ticket, seen.remaining)
        return window

    def _new_window(self, old: _Window, seen: Sighting) -> _Window:
        # The boundary fell after the old window's last request and before this answer. That is
        # all it says: narrowing it by what was expected would keep an error of the model alive.
        lo, hi = old.last_sent, seen.received
        if old.first_received is not None:
            self._w_lo = max(self._w_lo, old.last_sent - old.first_received)
        if self._boundary is not None:
            # Two boundaries are one window apart, or a whole number of windows.
            self._w_hi = max(_SHORTEST_WINDOW, min(self._w_hi, hi - self._boundary[0]))
        if self._w_lo > self._w_hi:  # a window seen longer than two boundaries allow: trust those
            self._w_lo = 0.0
        self._boundary = (lo, hi)
        self._test_grid(lo, hi)
        end_lo, end_hi = self._next_end(lo, hi, after=seen.received)
        return self._replace(self._open(seen, end_lo=end_lo, end_hi=end_hi))

    def _replace(self, window: _Window) -> _Window:
        self._window = window
        return window

    def _next_end(self, lo: float, hi: float, *, after: float) -> tuple[float, float]:
        """Return bounds on the end of the window that began between ``lo`` and ``hi``."""
        return self._on_grid(lo + self._w_lo, hi + self._w_hi, after=after)

    def _on_grid(self, end_lo: float, end_hi: float, *, after: float) -> tuple[float, float]:
        """Narrow an end to the server clock's grid point in it, once the grid is confirmed."""
        grid = self._grid_end(after) if self.aligned else None
        if grid is not None and end_lo <= grid[1] and grid[0] <= end_hi:
            return max(end_lo, grid[0]), min(end_hi, grid[1])
        return end_lo, end_hi

    def _add(self, window: _Window, seen: Sighting) -> None:
        if window.first_received is None:  # the first answer of a window entered by the clock
            window.first_received = seen.received
            window.end_hi = min(window.end_hi, seen.received + self._w_hi)
            window.seen_at = seen.received
        window.last_sent = max(window.last_sent, seen.sent)
        window.end_lo = max(window.end_lo, seen.sent)
        if window.end_lo >= window.end_hi:
            # Still the same window past its latest end: it is longer than believed.
            window.end_hi = seen.received + self._w_hi
            if self.aligned:
                self._judge(aligned=False)
        if seen.ticket > window.latest:
            window.latest, window.remaining = seen.ticket, seen.remaining
        self._count_others(window, seen)
        if self.aligned is None and self._offset.dated and window.first_received is not None:
            grid = self._grid_end(window.first_received)
            if grid is not None and grid[1] < seen.sent:
                self._judge(aligned=False)  # sent after the minute turned, and no new window

    def _count_others(self, window: _Window, seen: Sighting) -> None:
        if seen.remaining <= 0:
            return  # a spent window hides how many more were asked for
        if window.anchor is None:
            window.anchor, window.seen_at = (seen.ticket, seen.remaining), seen.received
            return
        ticket, remaining = window.anchor
        if seen.ticket <= ticket:
            return
        others = (remaining - seen.remaining) - (seen.ticket - ticket)
        self._others.add(window.seen_at, seen.received, max(0, others - window.others))
        window.others = max(window.others, others)
        window.seen_at = seen.received

    def _learn_reset(self, window: _Window, reset_at: float) -> None:
        # A whole-second Unix time, rounded up: the end fell within the second before it.
        lo, hi = reset_at - 1 - self._offset.hi, reset_at - self._offset.lo
        if hi <= window.end_lo or lo >= window.end_hi:
            return  # an end already past, or beyond the longest window: nothing to learn
        window.end_lo, window.end_hi = max(window.end_lo, lo), min(window.end_hi, hi)
        window.known_lo = max(window.known_lo, lo)

    def _test_grid(self, lo: float, hi: float) -> None:
        """Judge the grid by a boundary seen in ``(lo, hi]``.

        Off the grid rejects it. Two boundaries on it, one grid length apart, confirm it: one
        alone might be a boundary of shorter windows that happens to fall on a minute.
        """
        period = self._grid_period()
        previous, self._grid_boundary = self._grid_boundary, None
        if period is None or not self._offset.dated or hi - lo > _PRECISE:
            return
        earliest = lo + self._offset.lo - _GRID_TOLERANCE
        latest = hi + self._offset.hi + _GRID_TOLERANCE
        if math.floor(latest / period) * period < earliest:
            self._judge(aligned=False)
            return
        self._grid_boundary = (lo, hi)
        if previous is not None and hi - previous[0] < 2 * period:
            self._judge(aligned=True)

    def _grid_period(self) -> float | None:
        """Return the length the server clock's grid would have: 60 s unless shown otherwise."""
        if self._w_lo <= DOCUMENTED_WINDOW <= self._w_hi:
            return DOCUMENTED_WINDOW
        whole = round(self._w_hi)
        if (
            whole >= 1
            and self._w_lo <= whole <= self._w_hi
            and self._w_hi - self._w_lo < _WHOLE_SECONDS
        ):
            return float(whole)
        return None

    def _grid_end(self, after: float) -> tuple[float, float] | None:
        """Return when (on our clock) the server clock's next grid point after ``after`` comes."""
        period = self._grid_period()
        if period is None or not math.isfinite(self._offset.lo):
            return None
        point = (math.floor((after + self._offset.lo) / period) + 1) * period
        return point - self._offset.hi, point - self._offset.lo

    def _roll(self, now: float, sent: int) -> _Window | None:
        """Move on to the next window once the current one has certainly ended."""
        window = self._window
        if window is None or now < window.end_hi or self.limit is None:
            return window
        lo, hi = window.end_lo, window.end_hi
        for _ in range(_MAX_ROLLS):
            if hi > now:
                break
            lo, hi = lo + self._w_lo, hi + self._w_hi
        else:
            lo, hi = now, now + self._w_hi  # too many windows ago: the phase is lost
        lo, hi = self._on_grid(lo, hi, after=now)
        return self._replace(
            _Window(
                first=sent + 1,
                latest=sent,
                remaining=self.limit,
                end_lo=max(lo, now),
                end_hi=hi,
                known_lo=lo,
            )
        )

    def plan(self, now: float, sent: int) -> Plan | None:
        """Return what the current window allows at ``now``, ``sent`` requests having been sent."""
        window = self._roll(now, sent)
        limit = self.limit
        if window is None or limit is None:
            return None
        # Our requests sent since the latest answer are not in its count yet.
        left = window.remaining - (sent - window.latest)
        others = self._others
        reserve = others.reserve() + self.floor + others.rate() * max(0.0, window.end_hi - now)
        ours = self._share * limit - (sent - window.first + 1)
        return Plan(
            spendable=min(left - reserve, ours),
            horizon=max(0.0, self._plan_end(window) - now),
            next_chance=self._next_chance(window),
            probe_gap=(
                math.inf
                if window.end_hi - window.known_lo <= _PRECISE
                else max(_MIN_PROBE_GAP, self._w_hi / _PROBES_PER_WINDOW)
            ),
        )

    def _plan_end(self, window: _Window) -> float:
        if window.end_hi - window.known_lo <= _PRECISE:
            return window.known_lo
        grid = self._hypothesis(window)
        if grid is not None and window.end_lo <= grid[0] < window.end_hi:
            return grid[0]  # see the module docstring
        return window.end_hi

    def _next_chance(self, window: _Window) -> float:
        grid = self._hypothesis(window)
        if grid is not None and grid[1] < window.end_hi:
            return grid[1]
        return window.end_hi

    def _hypothesis(self, window: _Window) -> tuple[float, float] | None:
        """Return when the window ends if it ends on the server clock's grid, while untested."""
        if self.aligned is not None:
            return None
        return self._grid_end(
            window.end_lo if window.first_received is None else window.first_received
        )

    @property
    def floor(self) -> float:
        """Requests every window keeps unspent whatever the estimates say."""
        return max(1.0, _FLOOR_SHARE * (self.limit or 0))

    def left(self, now: float, sent: int) -> int | None:
        """Return what remains of the current window, by the latest answer and our sends since."""
        window = self._roll(now, sent)
        if window is None:
            return None
        return max(0, window.remaining - (sent - window.latest))

    def per_window(self) -> float | None:
        """Return the requests a whole window leaves this run, as learned so far."""
        limit = self.limit
        if limit is None:
            return None
        others = self._others.rate() * self.period + self._others.reserve() + self.floor
        return max(0.0, min(self._share * limit, limit - others))
