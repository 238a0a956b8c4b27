"""The public API: ``bulkdelete.__all__`` is sorted and names everything exported."""

from __future__ import annotations

import subprocess
import sys

import bulkdelete


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name of the package, in order, and each one resolves."""
    public = {
        name
        for name, value in vars(bulkdelete).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("bulkdelete")
    }
    assert bulkdelete.__all__ == sorted(bulkdelete.__all__)
    assert public | {"__version__", "delete_users"} == set(bulkdelete.__all__)
    assert all(getattr(bulkdelete, name) is not None for name in bulkdelete.__all__)


def test_importing_the_package_does_not_import_aiohttp() -> None:
    """A dry run stays small: aiohttp is loaded only when delete_users is asked for."""
    code = "import sys, bulkdelete; print('aiohttp' in sys.modules); bulkdelete.delete_users; "
    code += "print('aiohttp' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
