"""Tests for bulkdelete.uidset: an exact, compact set of UIDs."""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkdelete.uidset import UidSet

UID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"

# Small alphabets and shared stems make duplicates, prefixes and near-misses common.
STRINGS = st.one_of(
    st.text(alphabet="ab", max_size=4),
    st.builds("user-{}".format, st.integers(0, 3000)),
    st.text(alphabet=UID_CHARS, min_size=95, max_size=100),
    st.text(max_size=8),
    st.text(st.characters(categories=["Cs", "Co", "Lo"]), max_size=3),
    st.text(alphabet="xé", min_size=120, max_size=300),
)
OPS = st.lists(st.tuples(st.sampled_from(["add", "in"]), STRINGS), max_size=400)


class _NarrowUidSet(UidSet):
    """A UidSet whose slots overflow at a 255-byte arena, to reach the 8-byte widening."""

    _TABLE_TYPECODE = "B"


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 1000), OPS)
def test_behaves_like_a_set_under_any_sequence_of_add_and_in(
    prefill: int, ops: list[tuple[str, str]]
) -> None:
    # Even-numbered "user-N" first, up to 1,000 of them: growth through up to 7 resizes.
    model = {f"user-{n}" for n in range(0, 2 * prefill, 2)}
    uids = UidSet()
    for uid in sorted(model):
        uids.add(uid)
    for op, uid in ops:
        if op == "add":
            assert uids.add(uid) == (uid not in model)
            model.add(uid)
        else:
            assert (uid in uids) == (uid in model)
        assert len(uids) == len(model)
    assert all(uid in uids for uid in model)


def test_add_returns_true_when_new_and_false_when_present() -> None:
    uids = UidSet()
    assert [uids.add("alice"), uids.add("bob"), uids.add("alice")] == [True, True, False]
    assert len(uids) == 2


def test_an_empty_set_contains_nothing() -> None:
    uids = UidSet()
    assert ("" in uids, "a" in uids, len(uids)) == (False, False, 0)


def test_the_empty_string_and_its_extensions_are_distinct() -> None:
    uids = UidSet()
    assert uids.add("")
    assert "" in uids
    assert "a" not in uids
    assert uids.add("a")
    assert not uids.add("")


def test_prefixes_and_extensions_of_a_member_are_not_members() -> None:
    uid = "u" * 100
    uids = UidSet()
    uids.add(uid)
    assert [uid[:n] in uids for n in (0, 1, 99, 100)] == [False, False, False, True]
    assert uid + "u" not in uids


def test_members_survive_many_resizes_and_near_misses_stay_out() -> None:
    members = [f"user-{n:07d}" for n in range(0, 40_000, 2)]
    uids = UidSet()
    assert all(uids.add(uid) for uid in members)
    assert not any(uids.add(uid) for uid in members)
    assert len(uids) == len(members)
    assert not any(f"user-{n:07d}" in uids for n in range(1, 40_000, 2))
    assert not any(f"{uid}-" in uids or uid[:-1] in uids for uid in members)


def test_strings_longer_than_a_growth_chunk_are_kept_exactly() -> None:
    huge = ["h" * 70_000, "h" * 70_001, "é" * 40_000, "x" * 200_000]
    short = [f"user-{n}" for n in range(300)]
    uids = UidSet()
    for uid in [*huge, *short]:  # the short ones force resizes after the huge ones
        assert uids.add(uid)
    assert all(uid in uids for uid in [*huge, *short])
    assert "h" * 69_999 not in uids
    assert "x" * 200_001 not in uids


def test_lone_surrogates_are_stored_apart_from_the_character_they_pair_into() -> None:
    uids = UidSet()
    assert uids.add("\U0001f600")
    assert uids.add("\ud83d\ude00")
    assert uids.add("\ud83d")
    assert "\ude00" not in uids
    assert len(uids) == 3


def test_non_strings_are_never_members() -> None:
    uids = UidSet()
    uids.add("1")
    assert (1 in uids, b"1" in uids, None in uids) == (False, False, False)


def test_offsets_widen_when_the_arena_outgrows_the_slot_size() -> None:
    members = [f"user-{n:07d}" for n in range(500)]  # 6.5 KB of arena, far past 255 bytes
    uids = _NarrowUidSet()
    assert all(uids.add(uid) for uid in members)
    assert all(uid in uids for uid in members)
    assert "user-0000500" not in uids
    assert len(uids) == 500


def test_takes_a_fraction_of_the_memory_of_a_set() -> None:
    members = [f"user-{n:07d}" for n in range(200_000)]
    uids = UidSet()
    for uid in members:
        uids.add(uid)
    as_set = set(members)
    set_bytes = sys.getsizeof(as_set) + sum(map(sys.getsizeof, as_set))
    assert uids.nbytes / len(uids) < 40
    assert uids.nbytes < set_bytes / 3


def test_nbytes_grows_with_the_contents() -> None:
    uids = UidSet()
    empty = uids.nbytes
    for n in range(1000):
        uids.add(f"user-{n:07d}")
    assert empty < uids.nbytes


def test_repr_shows_size_and_memory() -> None:
    uids = UidSet()
    uids.add("alice")
    assert repr(uids) == f"<UidSet len=1 nbytes={uids.nbytes}>"
