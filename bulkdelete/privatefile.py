"""Open the files that hold UIDs so that only their owner can read them (mode 0600).

UIDs can be personal data, and every file bulkdelete writes names them: the audit, the summary,
the reports and the CSV exports. ``os.open``'s mode only applies when it creates a file, and the
umask may narrow it further but never widen it, so an existing file would keep whatever mode it
had (0644 from an earlier tool, a copy, a hand-made file): each file is narrowed to 0600 with
``fchmod`` right after it is opened and before a byte is written to it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, TextIO

MODE: Final = 0o600


def open_fd(path: Path, flags: int) -> int:
    """Open ``path`` with ``flags`` (plus ``O_CREAT``) and return a descriptor to a 0600 file.

    Raises ``OSError`` when the file cannot be opened, or its mode set (it belongs to another
    user): writing UIDs into a file others can read is refused, not done quietly.
    """
    fd = os.open(path, flags | os.O_CREAT, MODE)
    try:
        os.fchmod(fd, MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_text(path: Path) -> TextIO:
    """Open ``path`` for writing UTF-8 text from its start (emptied first), mode 0600.

    Lines are written as given (``newline=""``), so the csv module's line ends stay as chosen.
    """
    return os.fdopen(open_fd(path, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8", newline="")


def write_bytes(path: Path, data: bytes) -> None:
    """Replace the contents of ``path`` with ``data``, the file readable by its owner only."""
    with os.fdopen(open_fd(path, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
        handle.write(data)
