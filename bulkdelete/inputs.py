"""The inputs of a delete run, opened and checked before anything is sent.

Files are scanned whole, then read again by the run, so a pipe named as a file is refused: it
can be read only once. Stdin is read as it comes and never stored: only its first record is
judged here. The caller hands in the process's stdin; this module reads no terminal itself.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bulkdelete.columns import Columns, Layout
from bulkdelete.errors import SettingError, UsageError
from bulkdelete.rows import STDIN, InputSummary, Row, Source, Stream, read_rows, scan
from bulkdelete.settings import Settings
from bulkdelete.survey import Survey, survey


@dataclass(frozen=True, slots=True)
class Opened:
    """The inputs of a run, checked: files scanned whole, stdin opened at its first row."""

    sources: list[Source | Stream]
    scanned: InputSummary  # the files among ``sources``
    layouts: dict[str, Layout]  # every input's layout, by name, in reading order

    @property
    def streams(self) -> list[str]:
        """Return the names of the inputs read as they come (stdin)."""
        return [source.name for source in self.sources if isinstance(source, Stream)]


def input_names(inputs: Sequence[str]) -> list[str]:
    """Return the inputs to read, stdin when none is named; stdin may be named once."""
    names = list(inputs) or [STDIN]
    if names.count(STDIN) > 1:
        raise UsageError("stdin (-) can be read only once: name it once")
    return names


def open_inputs(
    names: Sequence[str], settings: Settings, *, stdin: TextIO | None, allow_empty: bool
) -> Opened:
    """Scan the files whole, then open stdin (``None``: it is closed), waiting for its first row.

    Raises ``InputError`` for a file that cannot be read as UIDs, and ``UsageError`` for a pipe
    named as a file, a closed stdin, or an input without rows (unless ``allow_empty``).
    """
    columns = columns_of(settings)
    files = [Source(path=_readable_twice(name), name=name) for name in names if name != STDIN]
    scanned = scan(files, column=columns.name, no_header=columns.no_header, ref_column=columns.ref)
    unread = iter(files)
    sources: list[Source | Stream] = []
    for name in names:
        if name != STDIN:
            sources.append(next(unread))
        elif stdin is None:
            raise UsageError("stdin is closed: name the input files instead")
        else:
            sources.append(Stream.from_fd(stdin.fileno(), columns=columns))
    empty = scanned.rows == 0 and all(s.empty for s in sources if isinstance(s, Stream))
    if empty and not allow_empty:
        raise SettingError(
            "the input holds no rows: nothing to do ({allow_empty} makes that a success)",
            setting="allow_empty",
        )
    return Opened(sources, scanned, _layouts(sources, scanned))


def _readable_twice(name: str) -> Path:
    """Refuse a FIFO or a socket: files are read twice (checked, then sent), a pipe only once."""
    path = Path(name)
    try:
        mode = path.stat().st_mode
    except OSError:
        return path  # reading it reports the problem
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise UsageError(f"{name} is a pipe, which can be read only once: pass it as stdin (-)")
    return path


def _layouts(sources: Sequence[Source | Stream], scanned: InputSummary) -> dict[str, Layout]:
    """Return each input's layout, by name, in the order the inputs are read."""
    scans = iter(scanned.files)
    return {
        source.name: source.layout if isinstance(source, Stream) else next(scans).layout
        for source in sources
    }


def survey_files(opened: Opened, settings: Settings) -> Survey:
    """Count the rows of the files among the inputs, as a run would read them; stdin is left
    for the run, which caps it as it comes."""
    files = [source for source in opened.sources if isinstance(source, Source)]
    return survey(_rows(files, settings))


def survey_all(opened: Opened, settings: Settings, *, invalid_out: Path | None) -> Survey:
    """Count every row of the inputs, stdin read to its end, as a dry run does; write the
    invalid ones to ``invalid_out`` (raises ``OSError`` when it cannot be written)."""
    return survey(_rows(opened.sources, settings), invalid_out=invalid_out)


def columns_of(settings: Settings) -> Columns:
    """Return where the settings say each input's UIDs and references are."""
    return Columns(settings.column, settings.no_header, settings.ref_column)


def _rows(sources: Sequence[Source | Stream], settings: Settings) -> Iterator[Row]:
    columns = columns_of(settings)
    return read_rows(
        sources, column=columns.name, no_header=columns.no_header, ref_column=columns.ref
    )


def check_max_deletes(found: Survey, max_deletes: int | None) -> None:
    """Refuse inputs holding more valid UIDs than ``max_deletes`` (None: no cap)."""
    if max_deletes is not None and found.valid > max_deletes:
        raise SettingError(
            "the input holds {valid} valid UIDs, more than {max_deletes} {most}; nothing was sent",
            setting="max_deletes",
            valid=found.valid,
            most=max_deletes,
        )
