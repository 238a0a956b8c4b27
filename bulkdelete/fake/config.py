"""``FakeConfig``: what the fake knows and how it misbehaves, checked once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bulkdelete.fake.answers import SUCCESS_BODIES
from bulkdelete.fake.faults import Fault
from bulkdelete.fake.window import HEADER_NAMES, RateWindow, ServerClock

__all__ = ["FakeConfig"]


@dataclass(frozen=True, slots=True)
class FakeConfig:
    """What the fake knows and how it misbehaves; field names match ``bulkdelete fake-server``.

    Fault rates are fractions of DELETEs and bulk calls in ``[0, 1]``; ``live_rate`` is requests
    per second; times are seconds. ``users`` and ``deactivated`` are lowercased here.
    ``max_batch`` is the most UIDs one bulk call takes (None: as many as ``max_body`` bytes of
    request body hold, the 10 KB CometChat documents).
    Raise ``ValueError`` on a value the server cannot honour.
    """

    api_key: str = "fake-api-key"
    users: frozenset[str] | None = None
    deactivated: frozenset[str] | None = None  # users that exist, deactivated, at the start
    all_exist: bool = False
    max_batch: int | None = None
    max_body: int = 10 * 1024
    deactivated_not_found: bool = False  # a permanent DELETE of a deactivated user: 404
    bulk_unlisted_rate: float = 0.0  # fraction of UIDs a bulk call's 200 names in no list
    limit: int | None = None
    window: float = 60.0
    window_from_first_request: bool = False
    reset_on_every_answer: bool = False
    header_style: Literal["old", "new", "both"] = "both"
    clock_skew: float = 0.0
    bad_key_status: int = 404
    seed: int = 0
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    drop_rate: float = 0.0
    latency: float = 0.0
    revoke_key_after: int | None = None
    fault_retry_after: float = 1.0
    live_rate: float = 0.0
    success_body: str = "documented"
    portal: bool = False
    redirect_to: str | None = None
    quote_key: bool = False
    live_burst_factor: float = 1.0
    live_burst_seconds: float = 0.0
    live_burst_every: float = 0.0

    def __post_init__(self) -> None:
        rates = [(fault.value, rate) for fault, rate in self.fault_rates.items()]
        problems = [
            f"{name}_rate must be within [0, 1], got {rate}"
            for name, rate in (*rates, ("bulk_unlisted", self.bulk_unlisted_rate))
            if not 0.0 <= rate <= 1.0
        ]
        problems += [
            f"{name} must not be negative, got {value}"
            for name, value in (
                ("slow_seconds", self.slow_seconds),
                ("latency", self.latency),
                ("fault_retry_after", self.fault_retry_after),
                ("revoke_key_after", self.revoke_key_after or 0),
                ("live_rate", self.live_rate),
                ("live_burst_factor", self.live_burst_factor),
                ("live_burst_seconds", self.live_burst_seconds),
                ("live_burst_every", self.live_burst_every),
            )
            if value < 0
        ]
        if self.live_burst_seconds > self.live_burst_every:
            problems.append(
                f"live_burst_seconds ({self.live_burst_seconds}) must not exceed "
                f"live_burst_every ({self.live_burst_every})"
            )
        if not math.isfinite(self.clock_skew):
            problems.append(f"clock_skew must be a finite number, got {self.clock_skew}")
        if not self.api_key:
            problems.append("api_key must not be empty")
        if self.window <= 0:
            problems.append(f"window must be positive, got {self.window}")
        problems += [
            f"{name} must be at least 1, got {value}"
            for name, value in (
                ("limit", self.limit),
                ("max_batch", self.max_batch),
                ("max_body", self.max_body),
            )
            if value is not None and value < 1
        ]
        if self.header_style not in HEADER_NAMES:
            problems.append(f"header_style must be old, new or both, got {self.header_style!r}")
        if not 400 <= self.bad_key_status <= 599:  # noqa: PLR2004 - the HTTP error range
            problems.append(
                f"bad_key_status must be an HTTP error status, got {self.bad_key_status}"
            )
        if self.success_body not in SUCCESS_BODIES:
            problems.append(
                f"success_body must be one of {', '.join(SUCCESS_BODIES)}, "
                f"got {self.success_body!r}"
            )
        if self.redirect_to is not None and not self.redirect_to.startswith(
            ("http://", "https://")
        ):
            problems.append(f"redirect_to must be an http(s) URL, got {self.redirect_to!r}")
        if self.portal and self.redirect_to is not None:
            problems.append("portal and redirect_to cannot both answer every request")
        if problems:
            raise ValueError("; ".join(problems))
        for name in ("users", "deactivated"):
            if (uids := getattr(self, name)) is not None:
                object.__setattr__(self, name, frozenset(uid.lower() for uid in uids))

    def live_rate_at(self, now: float) -> float:
        """Return the live traffic's rate at server time ``now``, bursts included."""
        every, burst = self.live_burst_every, self.live_burst_seconds
        if burst and now % every >= every - burst:
            return self.live_rate * self.live_burst_factor
        return self.live_rate

    def rate_window(self, clock: ServerClock) -> RateWindow | None:
        """Return the rate window these settings describe, on ``clock``; None without a limit."""
        if self.limit is None:
            return None
        return RateWindow(
            self.limit,
            self.window,
            HEADER_NAMES[self.header_style],
            clock=clock,
            from_first_request=self.window_from_first_request,
            reset_on_every_answer=self.reset_on_every_answer,
        )

    @property
    def fault_rates(self) -> dict[Fault, float]:
        """Return each fault kind's rate."""
        return {
            Fault.RESET: self.reset_rate,
            Fault.FAIL: self.fail_rate,
            Fault.THROTTLE: self.throttle_rate,
            Fault.DROP: self.drop_rate,
            Fault.SLOW: self.slow_rate,
        }
