"""The window as the answers reveal it: its end, what remains, other clients' use, the grid."""

from __future__ import annotations

import math

import pytest

from bulkdelete.budget import Budget
from bulkdelete.serverclock import Sighting

# The server clock's Unix time at our clock's 0: 20 s into a minute.
SERVER_AT_ZERO = 1_700_000_040.0 + 20.0
LIMIT = 3000


class Answers:
    """Feed a Budget answers to requests sent one after another, on our clock."""

    def __init__(self, budget: Budget, *, latency: float = 0.01, dated: bool = True) -> None:
        self.budget = budget
        self.latency = latency
        self.dated = dated
        self.ticket = 0

    def answer(
        self,
        at: float,
        remaining: int,
        *,
        reset_at: float | None = None,
        in_flight_before: int = 0,
        ticket: int | None = None,
    ) -> None:
        """Record the answer to a request sent at ``at`` (our clock), numbered next unless given."""
        if ticket is None:
            self.ticket += 1
            ticket = self.ticket
        received = at + self.latency
        self.budget.observe(
            Sighting(
                limit=LIMIT,
                remaining=remaining,
                ticket=ticket,
                sent=at,
                received=received,
                in_flight_before=in_flight_before,
                reset_at=reset_at,
                server_date=math.floor(SERVER_AT_ZERO + at) if self.dated else None,
                wall_offset=SERVER_AT_ZERO,
            )
        )

    def steady(
        self, start: float, end: float, rate: float, remaining: int, others: float = 0.0
    ) -> int:
        """Answer requests sent at ``rate`` from ``start`` to ``end``; return what remains after.

        Other clients take ``others`` per second from the same window meanwhile.
        """
        left = float(remaining)
        for n in range(round((end - start) * rate)):
            left -= 1 + others / rate
            self.answer(start + n / rate, round(left))
        return round(left)


@pytest.fixture
def budget() -> Budget:
    return Budget(max_share=0.98)


def test_limit_and_remaining_alone_give_a_plan(budget: Budget) -> None:
    """No reset, no Date: what remains is planned to the clock's minute, 40 s away."""
    Answers(budget, dated=False).answer(0.0, LIMIT - 1)
    plan = budget.plan(0.01, sent=1)
    assert plan is not None
    assert plan.spendable == pytest.approx(0.98 * LIMIT - 1)
    assert 38.9 <= plan.horizon <= 41.0  # our wall clock stands in for the server's, within 1 s


def test_before_any_limit_there_is_no_plan(budget: Budget) -> None:
    """Until an answer carries a limit there is nothing to pace by."""
    assert (budget.plan(0.0, sent=3), budget.per_window(), budget.left(0.0, 3)) == (
        None,
        None,
        None,
    )


def test_remaining_jumping_back_up_marks_a_new_window(budget: Budget) -> None:
    """After the jump the window is known to end one window after the boundary.

    One boundary on the clock's minute does not yet confirm that windows are the minutes (it
    could be a boundary of shorter windows); the next one, a minute later, does.
    """
    answers = Answers(budget)
    answers.steady(0.0, 40.0, 50, LIMIT)  # the clock's minute turns at 40 s
    answers.steady(40.0, 41.0, 50, LIMIT)
    plan = budget.plan(41.0, sent=answers.ticket)
    assert plan is not None
    assert budget.aligned is None
    assert plan.horizon == pytest.approx(59.0, abs=0.05)
    assert budget.left(41.0, answers.ticket) == LIMIT - 50
    answers.steady(41.0, 100.0, 40, LIMIT - 50)
    answers.steady(100.0, 101.0, 40, LIMIT)
    assert budget.aligned is True


def test_a_late_answer_is_not_a_new_window(budget: Budget) -> None:
    """A request sent before the latest may show more remaining when others were in flight."""
    answers = Answers(budget)
    answers.answer(1.0, 2000, ticket=10)
    answers.answer(1.01, 1990, ticket=20)
    # Sent after both, but overtaken by the five still in flight when it left.
    answers.answer(1.02, 1994, ticket=21, in_flight_before=5)
    assert budget.left(1.05, 21) == 1994


def test_a_boundary_off_the_minute_rejects_the_clock_hypothesis(budget: Budget) -> None:
    """Windows that turn at 25 s past the minute are planned from what was seen, not the clock."""
    answers = Answers(budget)
    answers.steady(0.0, 5.0, 50, 1500)
    answers.steady(5.0, 6.0, 50, LIMIT)  # a new window at 25 s past the server's minute
    plan = budget.plan(6.0, sent=answers.ticket)
    assert plan is not None
    assert budget.aligned is False
    assert plan.horizon == pytest.approx(59.0, abs=0.05)


def test_a_spent_window_is_probed_at_the_minute_then_every_few_seconds(budget: Budget) -> None:
    """Spent 20 s into a minute: the first chance is the minute (40 s away); if no new window
    then, the probes come a few seconds apart until the window's latest possible end."""
    answers = Answers(budget)
    answers.answer(0.0, 10)
    plan = budget.plan(1.0, sent=1)
    assert plan is not None
    assert plan.spendable < 1
    assert plan.next_chance == pytest.approx(40.0, abs=1.0)
    answers.answer(40.5, 9)  # still the same window after the minute turned
    plan = budget.plan(41.0, sent=2)
    assert plan is not None
    assert budget.aligned is False
    assert plan.next_chance == pytest.approx(60.01)
    assert plan.probe_gap == pytest.approx(3.0)


def test_a_reset_time_narrows_the_end(budget: Budget) -> None:
    """A 429's reset time pins the end to its second."""
    answers = Answers(budget)
    answers.answer(0.0, 0, reset_at=SERVER_AT_ZERO + 30.0)  # a server 10 s off the minute
    plan = budget.plan(0.5, sent=1)
    assert plan is not None
    assert 28.5 <= plan.next_chance <= 30.01


@pytest.mark.parametrize("reset_at", [SERVER_AT_ZERO - 5.0, SERVER_AT_ZERO + 86_400.0, 1e300])
def test_a_reset_in_the_past_or_beyond_a_window_holds_nothing(
    budget: Budget, reset_at: float
) -> None:
    """A reset already past, a day ahead, or 1e300: the window still ends within a minute."""
    answers = Answers(budget)
    answers.answer(0.0, 0, reset_at=reset_at)
    answers.answer(0.5, 0, reset_at=reset_at)
    plan = budget.plan(1.0, sent=2)
    assert plan is not None
    assert plan.next_chance <= 60.01


def test_a_count_from_an_earlier_window_holds_nothing(budget: Budget) -> None:
    """Once the window has certainly ended, its spent count does not hold the next one down."""
    Answers(budget).answer(0.0, 0)
    plan = budget.plan(61.0, sent=1)
    assert plan is not None
    assert plan.spendable == pytest.approx(0.98 * LIMIT)
    assert budget.left(61.0, 1) == LIMIT


def test_others_use_is_what_remaining_lost_beyond_ours(budget: Budget) -> None:
    """Remaining falling by 50/s more than our own requests means 15/s of others' use."""
    answers = Answers(budget)
    answers.steady(0.0, 30.0, 50, LIMIT, others=15)
    per_window = budget.per_window()
    assert per_window is not None
    assert per_window == pytest.approx(LIMIT - 15 * 60 - 15, rel=0.02)


def test_others_bursts_are_kept_in_reserve(budget: Budget) -> None:
    """10/s with 30/s for 5 s every 20 s: a burst's 75 requests above the mean stay unspent."""
    answers = Answers(budget)
    left, t = LIMIT, 0.0
    while t < 39.0:
        others = 30.0 if t % 20 >= 15 else 10.0
        left = answers.steady(t, t + 1, 50, left, others=others)
        t += 1
    per_window = budget.per_window()
    assert per_window is not None
    assert LIMIT - per_window == pytest.approx(15 * 60 + 75 + 15, abs=25)


def test_a_whole_window_leaves_the_run_its_share(budget: Budget) -> None:
    """With nobody else, a window leaves max_share of the limit."""
    Answers(budget).steady(0.0, 5.0, 50, LIMIT)
    assert budget.per_window() == pytest.approx(0.98 * LIMIT)


def test_the_server_clock_comes_from_the_date_header() -> None:
    """A server clock 1,017.4 s ahead of ours: its minute is still found from Date."""
    budget = Budget(max_share=0.98)
    skewed = 1017.4
    for n in range(100):
        at = n * 0.02
        budget.observe(
            Sighting(
                limit=LIMIT,
                remaining=LIMIT - n - 1,
                ticket=n + 1,
                sent=at,
                received=at + 0.01,
                in_flight_before=0,
                server_date=math.floor(SERVER_AT_ZERO + skewed + at),
                wall_offset=SERVER_AT_ZERO,
            )
        )
    plan = budget.plan(2.0, sent=100)
    assert plan is not None
    # At our 2 s the server is 20 + 1017.4 + 2 = 1039.4 s past a minute: 19.4 s into one.
    assert plan.horizon == pytest.approx(60 - 19.4, abs=0.05)
