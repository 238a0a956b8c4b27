"""inputs.py in process: opening and checking a run's inputs before anything is sent.

The CLI-level checks (exit 2, one line, nothing sent) are in test_cli.py and test_stdin.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest
from helpers import API_KEY

from bulkdelete.errors import SettingError, UsageError
from bulkdelete.inputs import check_max_deletes, input_names, open_inputs, survey_files
from bulkdelete.settings import Secret, Settings

SETTINGS = Settings(
    base_url="https://api.example/v3", api_key=Secret(API_KEY), audit_path=Path("audit.jsonl")
)


@pytest.fixture
def stdin() -> Iterator[TextIO]:
    """A stdin that holds one UID and then ends, as a pipe does."""
    read, write = os.pipe()
    os.write(write, b"uid\nzoe\n")
    os.close(write)
    with open(read, encoding="utf-8") as stream:
        yield stream


def _file(path: Path, *uids: str) -> str:
    path.write_text("".join(f"{uid}\n" for uid in ["uid", *uids]), encoding="utf-8")
    return str(path)


def test_files_and_stdin_open_in_reading_order(tmp_path: Path, stdin: TextIO) -> None:
    """A file, stdin, a file: layouts in that order, the files scanned, stdin named a stream."""
    first, last = _file(tmp_path / "a.csv", "ann", "bob"), _file(tmp_path / "b.csv", "cy")

    opened = open_inputs([first, "-", last], SETTINGS, stdin=stdin, allow_empty=False)

    assert list(opened.layouts) == [first, "-", last]
    assert (opened.scanned.rows, opened.streams) == (3, ["-"])
    assert survey_files(opened, SETTINGS).valid == 3  # stdin is left for the run


def test_stdin_is_the_input_when_none_is_named_and_only_once() -> None:
    """No input names stdin; naming it twice is refused."""
    assert input_names([]) == ["-"]
    with pytest.raises(UsageError, match="read only once"):
        input_names(["-", "a.csv", "-"])


def test_an_empty_input_names_the_setting_that_allows_it(tmp_path: Path) -> None:
    """A header-only input is refused, the error naming allow_empty; with it, it opens."""
    empty = _file(tmp_path / "empty.csv")
    with pytest.raises(SettingError) as raised:
        open_inputs([empty], SETTINGS, stdin=None, allow_empty=False)

    assert raised.value.setting == "allow_empty"
    assert str(raised.value) == (
        "the input holds no rows: nothing to do (allow_empty makes that a success)"
    )
    assert open_inputs([empty], SETTINGS, stdin=None, allow_empty=True).scanned.rows == 0


def test_a_closed_stdin_and_a_pipe_named_as_a_file_are_refused(tmp_path: Path) -> None:
    """Stdin that is closed cannot be read; a FIFO would be read twice (scanned, then sent)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="stdin is closed"):
        open_inputs(["-"], SETTINGS, stdin=None, allow_empty=False)
    with pytest.raises(UsageError, match="is a pipe"):
        open_inputs([str(fifo)], SETTINGS, stdin=None, allow_empty=False)


def test_max_deletes_names_the_setting(tmp_path: Path) -> None:
    """More valid UIDs than max_deletes is refused naming the setting; as many is fine."""
    opened = open_inputs(
        [_file(tmp_path / "a.csv", "ann", "bob", "cy")], SETTINGS, stdin=None, allow_empty=False
    )
    found = survey_files(opened, SETTINGS)
    check_max_deletes(found, 3)
    check_max_deletes(found, None)
    with pytest.raises(SettingError) as raised:
        check_max_deletes(found, 2)

    assert (raised.value.setting, str(raised.value)) == (
        "max_deletes",
        "the input holds 3 valid UIDs, more than max_deletes 2; nothing was sent",
    )
