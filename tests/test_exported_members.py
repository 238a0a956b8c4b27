"""The public API: ``bulkdelete.__all__`` is sorted and names everything exported."""

from __future__ import annotations

import bulkdelete


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name of the package, in order, and nothing missing."""
    public = {
        name
        for name, value in vars(bulkdelete).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("bulkdelete")
    }
    assert bulkdelete.__all__ == sorted(bulkdelete.__all__)
    assert public | {"__version__"} == set(bulkdelete.__all__)
