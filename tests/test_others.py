"""Other clients' use of the shared budget: its mean rate and the bursts above it."""

from __future__ import annotations

import pytest

from bulkdelete.others import HISTORY, OthersUse


def test_use_is_spread_over_the_seconds_it_took() -> None:
    """30 requests seen over 3 s are 10/s, whichever second they were read in."""
    others = OthersUse()
    others.add(0.0, 3.0, 30.0)
    expected = (10.0, 0.0)
    assert expected == (others.rate(), others.reserve())


def test_nothing_is_known_before_a_second_was_watched() -> None:
    """Half a second of use says no rate yet: a lucky instant is not a rate."""
    others = OthersUse()
    others.add(0.0, 0.5, 20.0)
    expected = 0.0
    assert expected == others.rate()


def test_a_burst_above_the_mean_is_the_reserve() -> None:
    """10/s with 30/s for 5 s of every 20 s: a mean of 15/s, bursts 75 above it."""
    others = OthersUse()
    for second in range(60):
        others.add(float(second), second + 1.0, 30.0 if second % 20 >= 15 else 10.0)
    assert others.rate() == pytest.approx(15.0)
    assert others.reserve() == pytest.approx(75.0)


def test_only_the_last_two_minutes_count() -> None:
    """A burst older than HISTORY seconds no longer holds a reserve, nor weighs on the rate."""
    others = OthersUse()
    others.add(0.0, 10.0, 1000.0)
    for second in range(10, 10 + HISTORY):
        others.add(float(second), second + 1.0, 5.0)
    assert (round(others.rate(), 6), round(others.reserve(), 6)) == (5.0, 0.0)
