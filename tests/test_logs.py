"""structlog configuration: JSON lines off a terminal, level filtering, and secret redaction."""

from __future__ import annotations

import html
import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
import structlog

from bulkdelete.logs import WITHHELD, Redaction, configure
from bulkdelete.settings import Secret

# Random-looking, so no part of it appears in a log line by chance.
SECRET = "Zq8vK3nW5tR1yH7pL2mX9cB4dF6gJ0sA"


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Undo configure(): structlog's defaults and the root logger's handlers and level."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def setup(level: str = "debug", stream: io.StringIO | None = None) -> io.StringIO:
    """Configure logging into a string buffer with SECRET registered; return the buffer."""
    out = stream if stream is not None else io.StringIO()
    configure(level=level, secrets=[SECRET], stream=out)
    return out


def records(out: io.StringIO) -> list[dict[str, Any]]:
    """Decode every line the logger wrote as one JSON object."""
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def assert_no_secret(text: str) -> None:
    """Fail when the secret, or any 8-character piece of it, is in ``text``."""
    pieces = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    leaked = sorted(piece for piece in pieces if piece in text)
    assert not leaked, f"pieces of the secret {leaked} in:\n{text}"


def test_off_a_terminal_each_event_is_one_json_line() -> None:
    """With a non-terminal stream each event is one JSON object with event, level and fields."""
    out = setup(level="info")
    log = structlog.get_logger("test")
    log.info("retrying", uid="alice", attempt=2)
    log.warning("paused", seconds=1.5)
    got = [{k: v for k, v in record.items() if k != "timestamp"} for record in records(out)]
    expected = [
        {"event": "retrying", "level": "info", "uid": "alice", "attempt": 2},
        {"event": "paused", "level": "warning", "seconds": 1.5},
    ]
    assert expected == got
    assert all("timestamp" in record for record in records(out))


def test_level_filtering_drops_lower_levels() -> None:
    """At level warning, debug and info events are dropped and warning and error kept."""
    out = setup(level="warning")
    log = structlog.get_logger("test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    expected = ["w", "e"]
    assert expected == [record["event"] for record in records(out)]


def test_debug_level_keeps_debug_events() -> None:
    """At level debug, debug events are written."""
    out = setup(level="debug")
    structlog.get_logger("test").debug("detail", n=1)
    expected = ["detail"]
    assert expected == [record["event"] for record in records(out)]


@pytest.mark.parametrize("method", ["debug", "info", "warning", "error"])
def test_secret_as_a_value_is_masked_at_every_level(method: str) -> None:
    """The secret as a field value, inside text, or in the event itself is masked at any level."""
    out = setup(level="debug")
    log = structlog.get_logger("test")
    getattr(log, method)(f"sending with {SECRET}", value=SECRET, header=f"apikey: {SECRET}")
    assert len(records(out)) == 1
    assert_no_secret(out.getvalue())


def test_secret_in_positional_format_arguments_is_masked() -> None:
    """A secret passed as a %-format argument is masked after formatting."""
    out = setup()
    structlog.get_logger("test").info("key is %s", SECRET)
    assert_no_secret(out.getvalue())


def test_secret_inside_nested_containers_is_masked() -> None:
    """The secret deep inside dicts, lists and tuples is masked; the other data is kept."""
    out = setup()
    structlog.get_logger("test").info(
        "request",
        request={"headers": {"x-key": SECRET, "accept": "application/json"}},
        attempts=[{"sent": [1, (SECRET, "ok")]}],
    )
    assert_no_secret(out.getvalue())
    record = records(out)[0]
    expected = "application/json"
    assert expected == record["request"]["headers"]["accept"]


@pytest.mark.parametrize("field", ["apikey", "api_key", "APIKEY", "Api_Key", "authorization"])
def test_secret_named_fields_are_masked_whatever_their_value(field: str) -> None:
    """A field named like a key is masked even when its value is not a registered secret."""
    other_key = "unregistered-key-value-123"
    out = setup()
    structlog.get_logger("test").info("call", **{field: other_key})
    assert other_key not in out.getvalue()
    assert field in records(out)[0]


def test_secret_named_fields_inside_dicts_are_masked() -> None:
    """A nested dict's apikey entry is masked too."""
    other_key = "unregistered-key-value-456"
    out = setup()
    structlog.get_logger("test").info("call", headers={"apikey": other_key, "accept": "*/*"})
    assert other_key not in out.getvalue()
    expected = "*/*"
    assert expected == records(out)[0]["headers"]["accept"]


def test_secret_inside_an_exception_value_is_masked() -> None:
    """An exception object passed as a field, whose message holds the secret, is masked."""
    out = setup()
    error = ValueError(f"server rejected key {SECRET}")
    structlog.get_logger("test").warning("failed", error=error)
    assert_no_secret(out.getvalue())
    assert "ValueError" in out.getvalue()


def _fail_with_secret_in_the_message(key: str) -> None:
    raise RuntimeError(f"bad key {key}")


def test_secret_in_a_logged_exception_traceback_is_masked() -> None:
    """log.exception() of an error whose message holds the secret does not print it."""
    out = setup()
    try:
        _fail_with_secret_in_the_message(SECRET)
    except RuntimeError:
        structlog.get_logger("test").exception("crashed")
    assert_no_secret(out.getvalue())
    assert "RuntimeError" in out.getvalue()


def _fail_with_secret_in_a_long_local(key: str) -> None:
    # A local whose repr is long enough to be cut short in the traceback's "locals".
    context = "prefix text that pushes the key past the cut-off of a local's repr: " + key
    raise RuntimeError(f"failed with {len(context)} characters of context")


def test_secret_in_a_truncated_traceback_local_is_masked() -> None:
    """A secret in a traceback local whose repr is cut short does not leak a piece of itself."""
    out = setup()
    try:
        _fail_with_secret_in_a_long_local(SECRET)
    except RuntimeError:
        structlog.get_logger("test").exception("crashed")
    assert_no_secret(out.getvalue())


class _Holder:
    """An object whose string form contains the secret (as a URL or a request object might)."""

    def __str__(self) -> str:
        return f"<request apikey={SECRET}>"

    __repr__ = __str__


@pytest.mark.parametrize(
    "value",
    [SECRET.encode(), {SECRET}, _Holder(), Secret(SECRET)],
    ids=["bytes", "set", "object", "Secret"],
)
def test_secret_inside_other_value_types_is_masked(value: object) -> None:
    """Bytes, sets and objects rendered by their str() never carry the secret into the output."""
    out = setup()
    structlog.get_logger("test").info("call", value=value)
    assert_no_secret(out.getvalue())


def test_on_a_terminal_output_is_console_text_and_still_masked() -> None:
    """On a terminal the console renderer is used, and the secret is masked there too."""
    out = setup(stream=FakeTerminal())
    structlog.get_logger("test").info("request", value=SECRET, headers={"apikey": "abc"})
    text = out.getvalue()
    assert "request" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)
    assert_no_secret(text)


def test_on_a_terminal_a_logged_exception_is_masked() -> None:
    """On a terminal, log.exception() of an error holding the secret does not print it."""
    out = setup(stream=FakeTerminal())
    try:
        _fail_with_secret_in_the_message(SECRET)
    except RuntimeError:
        structlog.get_logger("test").exception("crashed")
    assert "RuntimeError" in out.getvalue()
    assert_no_secret(out.getvalue())


def test_configure_without_secrets_leaves_values_alone() -> None:
    """With no secrets registered, ordinary values pass through unchanged."""
    out = io.StringIO()
    configure(level="info", stream=out)
    structlog.get_logger("test").info("call", uid="alice", note="nothing secret here")
    record = records(out)[0]
    expected = ("alice", "nothing secret here")
    assert expected == (record["uid"], record["note"])


# A secret with the characters that URL, HTML and JSON encodings change.
ODD = 'Zq8v/K3n+W5tR&1yH7pL"x'


@pytest.mark.parametrize(
    "written",
    [
        ODD.upper(),
        ODD.lower(),
        quote(ODD, safe=""),
        quote(ODD, safe="").lower(),
        quote(ODD),
        quote_plus(ODD),
        html.escape(ODD),
        json.dumps(ODD)[1:-1],
        json.dumps(ODD)[1:-1].replace("/", "\\/"),
    ],
    ids=[
        "upper",
        "lower",
        "percent",
        "percent-lower-hex",
        "path",
        "plus",
        "html",
        "json",
        "json-slash",
    ],
)
def test_a_secret_in_another_case_or_encoding_is_masked(written: str) -> None:
    """How a server or a URL writes the key changes nothing: it is masked in place."""
    expected = "server said: *** (twice: ***)"
    assert expected == Redaction([ODD])(f"server said: {written} (twice: {written})")


@pytest.mark.parametrize(
    "written",
    [
        quote(quote(ODD, safe=""), safe=""),
        "".join(f"%{ord(char):02x}" for char in ODD),
        quote(html.escape(ODD), safe=""),
        quote(ODD, safe="+"),
    ],
    ids=["percent-twice", "every-char", "percent-of-html", "percent-but-plus"],
)
def test_a_text_still_holding_the_secret_once_decoded_is_withheld(written: str) -> None:
    """An encoding no pattern foresaw: the text is withheld whole rather than half-masked."""
    expected = WITHHELD
    assert expected == Redaction([ODD])(f"server said: {written}")


@pytest.mark.parametrize(
    "text",
    ["100% done & 50%2F off + more", "a+b=c", "&amp; %zz %", ""],
    ids=["mixed", "plus", "junk", "empty"],
)
def test_text_without_the_secret_is_left_alone(text: str) -> None:
    """Percent signs, ampersands and pluses alone do not make a text suspect."""
    assert text == Redaction([ODD])(text)


def test_an_encoded_secret_in_a_log_value_is_masked() -> None:
    """The log processor masks the encoded forms too."""
    out = setup()
    structlog.get_logger("test").info("call", url=f"https://x.test/?k={quote(SECRET.lower())}")
    assert_no_secret(out.getvalue().lower())
