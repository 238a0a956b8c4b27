"""Property: no input, however hostile, sends a request anywhere but <base>/users/<one segment>."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from bulkdelete.api import user_url
from bulkdelete.errors import InputError
from bulkdelete.rows import Source, read_rows, scan

BASE = "https://app.api-eu.cometchat.io/v3"
# Lines built from the characters attackers reach for, plus anything at all.
_TRICKY = st.sampled_from(
    [
        "../",
        "/",
        "\\",
        "%2F",
        "%",
        "?",
        "#",
        "&",
        "=",
        "+",
        "@",
        "\u0430",
        "\uff41",
        ",",
        '"',
        "a",
        "Z",
        "9",
        "-",
        "_",
        " ",
        "\t",
        "\r",
    ]
)
# NUL bytes make the whole file refused (tested elsewhere); here every file must be read.
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_LINE = st.one_of(_TEXT, st.lists(_TRICKY, max_size=12).map("".join))


def _requests_for(content: str) -> list[tuple[str, URL]]:
    """Return (uid, URL) for every row bulkdelete would send: none from a refused file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.csv"
        path.write_text(content, encoding="utf-8", newline="")
        sources = [Source.file(path)]
        try:
            scan(sources, column=None)
        except InputError:  # e.g. a header naming no uid column: refused whole, nothing sent
            return []
        return [
            (row.uid, URL(user_url(BASE, row.uid)))
            for row in read_rows(sources, column=None)
            if row.uid is not None and not row.duplicate
        ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_LINE, min_size=1, max_size=8),
    st.sampled_from(["\n", "\r\n"]),
    # A header keeps most files readable (one column, or CSV); without one, many are refused.
    st.sampled_from([[], ["uid"], ["uid,note"]]),
)
def test_every_request_targets_exactly_one_user_segment(
    lines: list[str], newline: str, header: list[str]
) -> None:
    """Whatever the lines hold, each request's path is /v3/users/<the uid>, nothing more."""
    for uid, url in _requests_for(newline.join(header + lines) + newline):
        assert (url.scheme, url.host) == ("https", "app.api-eu.cometchat.io")
        assert url.raw_path == f"/v3/users/{uid}"
        assert url.parts == ("/", "v3", "users", uid)
        assert (url.query_string, url.fragment) == ("", "")
        assert re.fullmatch(r"[a-z0-9_-]{1,100}", uid)
