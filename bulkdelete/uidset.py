"""An exact set of UIDs in compact memory, for duplicate checks over millions of rows.

A ``set[str]`` of a million 12-character UIDs costs ~90 MB, mostly ``str`` object headers. Here
each UID is one record in a ``bytearray`` arena: its UTF-8 bytes and a 0xFF terminator, a byte
UTF-8 never produces. An open-addressing table (an ``array`` whose size is a power of two,
probed linearly) holds each record's arena offset + 1, with 0 for an empty slot. That is
~20-28 bytes per 12-character UID in all.

Membership is exact, never a hash guess: a probe compares the whole record, terminator included,
with the arena bytes at the slot's offset, so a match means the stored UID ends where the probed
one does and is equal to it. A false "duplicate" would skip erasing a real user.

Nothing is stored per UID but its record and its slot: the table grows x2 at load 0.6 by
splitting the arena back into UIDs, a chunk at a time, and hashing them again. ``hash`` is salted
per process, which is fine because nothing here is persisted. Slots hold 4-byte offsets, widened
to 8 bytes if the arena ever passes 4 GiB.
"""

from __future__ import annotations

import sys
from array import array

__all__ = ["UidSet"]

_END = b"\xff"  # never in UTF-8, surrogatepass's 3-byte forms for lone surrogates included
_MIN_SLOTS = 16
_MAX_LOAD = 0.6
_CHUNK = 1 << 16  # bytes of arena copied at a time while the table grows


class UidSet:
    """An exact set of short strings (CometChat UIDs) in compact memory.

    Made for UIDs of 1-100 ASCII characters, but any ``str`` is stored exactly. Only ``add``,
    ``in`` and ``len`` are offered: nothing is ever removed or listed.
    """

    __slots__ = ("_arena", "_count", "_grow_at", "_mask", "_table")

    # Tests narrow this in a subclass to reach the widening path without 4 GiB of UIDs.
    _TABLE_TYPECODE = "I"

    def __init__(self) -> None:
        self._arena = bytearray()
        self._count = 0
        self._table = array(self._TABLE_TYPECODE, [0]) * _MIN_SLOTS
        self._mask = _MIN_SLOTS - 1
        self._grow_at = int(_MIN_SLOTS * _MAX_LOAD)

    def add(self, uid: str) -> bool:
        """Add ``uid``; return True when it was new, False when it was already present."""
        # Inlined rather than shared with __contains__: a Python call costs as much as a probe.
        data = uid.encode("utf-8", "surrogatepass")
        record = data + _END
        table = self._table
        arena = self._arena
        mask = self._mask
        index = hash(data) & mask
        while slot := table[index]:
            if arena.startswith(record, slot - 1):
                return False
            index = (index + 1) & mask
        offset = len(arena)
        arena += record
        try:
            table[index] = offset + 1
        except OverflowError:  # the arena just outgrew 4-byte offsets
            self._widen()
            self._table[index] = offset + 1
        self._count += 1
        if self._count > self._grow_at:
            self._grow()
        return True

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, str):
            return False
        data = uid.encode("utf-8", "surrogatepass")
        record = data + _END
        table = self._table
        arena = self._arena
        mask = self._mask
        index = hash(data) & mask
        while slot := table[index]:
            if arena.startswith(record, slot - 1):
                return True
            index = (index + 1) & mask
        return False

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<UidSet len={self._count} nbytes={self.nbytes}>"

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the arena and the table, spare capacity included."""
        return sys.getsizeof(self._arena) + sys.getsizeof(self._table)

    def _grow(self) -> None:
        """Double the table and re-insert every record, in arena order."""
        slots = len(self._table) * 2
        mask = slots - 1
        # Repeating a one-item array allocates once; array(code, bytes(n)) would need 2x at peak.
        table = array(self._table.typecode, [0]) * slots
        arena = self._arena
        start = 0
        with memoryview(arena) as view:
            while start < len(arena):
                # Whole records only: up to the last terminator in the chunk, or past a long UID.
                stop = arena.rfind(_END, start, start + _CHUNK) + 1 or arena.find(_END, start) + 1
                offset = start
                # A bytes copy of the chunk, because split pieces of a bytearray are unhashable.
                for data in bytes(view[start : stop - 1]).split(_END):
                    index = hash(data) & mask
                    while table[index]:
                        index = (index + 1) & mask
                    table[index] = offset + 1
                    offset += len(data) + 1
                start = stop
        self._table = table
        self._mask = mask
        self._grow_at = int(slots * _MAX_LOAD)

    def _widen(self) -> None:
        """Switch the table to 8-byte offsets once the arena outgrows 4-byte ones."""
        self._table = array("Q", self._table)
