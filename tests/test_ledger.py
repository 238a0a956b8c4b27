"""The ledger of verify: every input row settled by one line, a --restart by one more."""

from __future__ import annotations

from collections.abc import Iterator

from bulkdelete.audit import Pseudonyms
from bulkdelete.errors import InputError
from bulkdelete.ledger import Ledger
from bulkdelete.outcome import Outcome
from bulkdelete.rows import Row

PLAIN = Pseudonyms(None)


class Found:
    """What the ledger reported, as (where, problem) pairs; a line reference is its number."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def find(self, path: str, line: int | None, problem: str) -> None:
        self.problems.append((f"{path}:{line}", problem))

    def at(self, ref: int, problem: str) -> None:
        self.problems.append((self.where(ref), problem))

    def where(self, ref: int) -> str:
        return f"audit:{ref}"


def _rows() -> list[Row]:
    return [
        Row("in.csv:2", "alice", "alice", None),
        Row("in.csv:3", "bad uid", None, "whitespace inside"),
        Row("in.csv:4", "ALICE", "alice", None, duplicate=True),
    ]


def test_rows_settled_once_each_pass() -> None:
    """One final line per UID and one line per invalid or duplicate row: nothing to report."""
    found = Found()
    ledger = Ledger(found)
    ledger.begin_attempt(1, restart=False)
    ledger.uid_line(2, "alice", Outcome.DELETED)
    ledger.row_line("in.csv", 3, 3, Outcome.INVALID, "in.csv:3")
    ledger.row_line("in.csv", 4, 4, Outcome.DUPLICATE, "in.csv:4")

    assert (ledger.check(_rows(), PLAIN), found.problems) == (3, [])


def test_a_second_final_line_fails_unless_a_restart_wrote_it() -> None:
    """The same run twice settles alice twice; a --restart after the first may settle it again."""
    twice, restarted = Found(), Found()
    for found, restart in ((twice, False), (restarted, True)):
        ledger = Ledger(found)
        ledger.begin_attempt(1, restart=False)
        ledger.uid_line(2, "alice", Outcome.DELETED)
        ledger.begin_attempt(10, restart=restart)
        ledger.uid_line(11, "alice", Outcome.NOT_FOUND)
        ledger.check(_rows()[:1], PLAIN)

    assert twice.problems == [
        ("audit:11", "uid 'alice' has 2 final outcomes: lines audit:2, audit:11")
    ]
    assert restarted.problems == []


def test_what_is_left_unsettled_or_unread_is_named() -> None:
    """A UID with only a failed line, a final UID in no input, a row line for no row."""
    found = Found()
    ledger = Ledger(found)
    ledger.begin_attempt(1, restart=False)
    ledger.uid_line(2, "alice", Outcome.FAILED)
    ledger.uid_line(3, "zed", Outcome.DELETED)
    ledger.row_line("in.csv", 3, 4, Outcome.DUPLICATE, "in.csv:3")
    ledger.row_line("in.csv", 9, 5, Outcome.INVALID, "in.csv:9")

    ledger.check(_rows()[:2], PLAIN)

    assert found.problems == [
        ("in.csv:2", "uid 'alice' has no final outcome in any run; line audit:2 says failed"),
        ("audit:4", "records in.csv:3 as duplicate, but that row is invalid"),
        ("in.csv:3", "this invalid row has no invalid line in the audit"),
        ("audit:3", "uid 'zed' has a final outcome but is in none of the inputs"),
        ("audit:5", "records in.csv:9 as invalid, but the inputs hold no such row"),
    ]


def test_an_input_that_turns_unreadable_is_a_finding_and_the_rest_is_still_judged() -> None:
    """Rows before the error count; lines for rows never read are still named."""
    found = Found()
    ledger = Ledger(found)
    ledger.uid_line(2, "alice", Outcome.DELETED)
    ledger.uid_line(3, "bob", Outcome.DELETED)

    def rows() -> Iterator[Row]:
        yield Row("in.csv:2", "alice", "alice", None)
        raise InputError("a NUL byte", source="in.csv", line=3)

    assert ledger.check(rows(), PLAIN) == 1
    assert found.problems == [
        ("in.csv:3", "cannot read the input: in.csv:3: a NUL byte"),
        ("audit:3", "uid 'bob' has a final outcome but is in none of the inputs"),
    ]
