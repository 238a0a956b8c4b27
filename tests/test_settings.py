"""Run settings: the Secret that never shows itself, validation, and the public view."""

from __future__ import annotations

import dataclasses
import inspect
import math
import pickle
from pathlib import Path
from typing import Any

import pytest

from bulkdelete.cli import cli, message
from bulkdelete.errors import SettingError, UsageError
from bulkdelete.pacing import Pacer
from bulkdelete.retry import RetryPolicy
from bulkdelete.run import run_delete
from bulkdelete.settings import DEFAULTS, Secret, Settings, default_base_url

KEY = "sk-live-4f9c2e7a1b"


def make(**overrides: Any) -> Settings:
    """Build valid Settings with the given fields changed."""
    values: dict[str, Any] = {
        "base_url": "https://app.api-us.cometchat.io/v3",
        "api_key": Secret(KEY),
        "audit_path": Path("audit.jsonl"),
    }
    values.update(overrides)
    return Settings(**values)


# --- Secret -----------------------------------------------------------------------------------


def test_secret_repr_and_str_hide_the_value() -> None:
    """repr, str, format and %-formatting of a Secret never contain its value."""
    secret = Secret(KEY)
    shown = [repr(secret), str(secret), f"{secret}", "%s" % secret, f"{secret!r}"]  # noqa: UP031
    leaks = [text for text in shown if KEY in text]
    assert not leaks, leaks


def test_secret_reveal_returns_the_value() -> None:
    """reveal() is the one way to get the value back."""
    expected = KEY
    assert expected == Secret(KEY).reveal()


def test_secret_cannot_be_pickled() -> None:
    """Pickling a Secret fails instead of writing the key somewhere."""
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY))


def test_secrets_compare_by_value() -> None:
    """Two Secrets with the same value are equal; different values are not."""
    same, different = Secret(KEY) == Secret(KEY), Secret(KEY) == Secret("other")
    expected = (True, False)
    assert expected == (same, different)


# --- Settings ---------------------------------------------------------------------------------


def test_settings_repr_never_contains_the_key() -> None:
    """Printing the settings (as a traceback or a log might) never shows the key."""
    settings = make()
    assert KEY not in repr(settings)
    assert KEY not in str(settings)


def test_public_view_has_no_key() -> None:
    """public() has no key field and no value that reveals the key."""
    public = make(target="production").public()
    assert not {"api_key", "apikey", "key"} & set(public)
    assert KEY not in repr(public)
    expected = ("https://app.api-us.cometchat.io/v3", "production")
    assert expected == (public["base_url"], public["target"])


def test_target_defaults_to_the_base_url() -> None:
    """Without a target name, the target shown to people is the base URL."""
    expected = "https://app.api-us.cometchat.io/v3"
    assert expected == make().target


def test_auto_rate_is_the_documented_limit() -> None:
    """Without --rate the ceiling is CometChat's documented 10,000 per minute, shown as auto."""
    settings = make(rate=None)
    expected = (10_000 / 60, "auto")
    assert expected == (settings.rate_ceiling, settings.public()["rate"])


def test_a_given_rate_is_the_ceiling() -> None:
    """A --rate value is the ceiling and is shown as given."""
    settings = make(rate=25.0)
    expected = (25.0, 25.0)
    assert expected == (settings.rate_ceiling, settings.public()["rate"])


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they were validated."""
    settings = make()
    with pytest.raises(AttributeError):
        settings.rate = 1e9  # type: ignore[misc]  # assigning to a frozen field on purpose


def test_every_default_comes_from_the_one_table() -> None:
    """Settings, the delete options, RetryPolicy, the pacer and run_delete default to DEFAULTS."""
    table = dataclasses.asdict(DEFAULTS)
    settings = {f.name: f.default for f in dataclasses.fields(Settings) if f.name in table}
    options = {p.name: p.default for p in cli.commands["delete"].params if p.name in table}
    policy, pacer = RetryPolicy(), inspect.signature(Pacer).parameters
    grace = inspect.signature(run_delete).parameters["stop_grace"].default

    assert {**settings, "stop_grace": grace} == table
    assert options == settings
    assert (policy.max_attempts, policy.max_time) == (
        DEFAULTS.max_attempts,
        DEFAULTS.max_retry_time,
    )
    assert [pacer[name].default for name in ("max_concurrency", "max_share", "max_outage")] == [
        DEFAULTS.concurrency,
        DEFAULTS.max_share,
        DEFAULTS.max_outage,
    ]


@pytest.mark.parametrize(
    ("overrides", "mentions"),
    [
        ({"api_key": Secret("")}, "API key"),
        ({"base_url": "ftp://app.example/v3"}, "https://"),
        ({"base_url": "app.api-us.cometchat.io/v3"}, "https://"),
        ({"rate": 0.0}, "--rate"),
        ({"rate": -5.0}, "--rate"),
        ({"rate": math.nan}, "--rate"),
        ({"rate": math.inf}, "--rate"),
        ({"api_key": Secret("k-1234\r\nX-Evil: 1")}, "API key"),
        ({"api_key": Secret("k-12 34")}, "API key"),
        ({"api_key": Secret("k-1234\u00e9")}, "API key"),
        ({"base_url": "https://user:pw@app.api-us.cometchat.io/v3"}, "no user"),
        ({"base_url": "https://x@127.0.0.1:47111/.api-us.cometchat.io/v3"}, "no user"),
        ({"base_url": "https://app.api-us.cometchat.io/v3?x=1"}, "query"),
        ({"base_url": "https://app.api-us.cometchat.io/v3#top"}, "fragment"),
        ({"base_url": "https:///v3"}, "https://host"),
        ({"concurrency": 0}, "--concurrency"),
        ({"concurrency": 100_000}, "--concurrency"),
        ({"max_attempts": 0}, "--max-attempts"),
        ({"timeout": 0.0}, "--timeout"),
        ({"timeout": -1.0}, "--timeout"),
        ({"timeout": math.nan}, "--timeout"),
        ({"timeout": math.inf}, "--timeout"),
        ({"max_outage": 0.0}, "--max-outage"),
        ({"max_outage": math.nan}, "--max-outage"),
        ({"max_pause": 0.0}, "--max-pause"),
        ({"max_pause": math.inf}, "--max-pause"),
        ({"max_share": 0.0}, "--max-share"),
        ({"max_share": 1.5}, "--max-share"),
        ({"max_share": math.nan}, "--max-share"),
    ],
    ids=[
        "empty-key",
        "ftp-url",
        "no-scheme",
        "rate-0",
        "rate-negative",
        "rate-nan",
        "rate-inf",
        "key-with-crlf",
        "key-with-space",
        "key-non-ascii",
        "url-with-userinfo",
        "url-with-user-before-host",
        "url-with-query",
        "url-with-fragment",
        "url-without-host",
        "concurrency-0",
        "concurrency-huge",
        "attempts-0",
        "timeout-0",
        "timeout-negative",
        "timeout-nan",
        "timeout-inf",
        "max-outage-0",
        "max-outage-nan",
        "max-pause-0",
        "max-pause-inf",
        "max-share-0",
        "max-share-above-1",
        "max-share-nan",
    ],
)
def test_invalid_settings_raise_usage_error(overrides: dict[str, Any], mentions: str) -> None:
    """Each invalid value raises UsageError whose message names what is wrong."""
    with pytest.raises(UsageError) as raised:
        make(**overrides)
    assert mentions in message(raised.value)  # the CLI says a setting as its flag
    assert KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "setting", "said"),
    [
        ({"rate": 0.0}, "rate", "rate must be a finite number above 0, got 0.0"),
        ({"max_attempts": 0}, "max_attempts", "max_attempts must be between 1 and 1000, got 0"),
        (
            {"column": "uid", "no_header": True},
            "column",
            "column names a header row and no_header says there is none: give one",
        ),
        ({"uid_hash": True}, "uid_hash", "uid_hash needs the HMAC key in audit_key"),
        (
            {"api_key": Secret("")},
            "api_key",
            "no API key: set api_key (an empty value counts as none)",
        ),
        (
            {"erase_deactivated": True},
            "erase_deactivated",
            "erase_deactivated erases the deactivated users a permanent run finds: it needs "
            "permanent",
        ),
    ],
    ids=[
        "rate",
        "attempts",
        "column-and-no-header",
        "uid-hash-without-key",
        "no-key",
        "erase-without-permanent",
    ],
)
def test_errors_name_the_setting_not_a_flag(
    overrides: dict[str, Any], setting: str, said: str
) -> None:
    """The library speaks of Settings' fields: the error names the one at fault, and its
    message names no CLI flag or environment variable."""
    with pytest.raises(SettingError) as raised:
        make(**overrides)
    assert (raised.value.setting, str(raised.value)) == (setting, said)


@pytest.mark.parametrize("concurrency", [1, 1000])
def test_concurrency_bounds_are_inclusive(concurrency: int) -> None:
    """The smallest and largest allowed concurrency are accepted."""
    assert concurrency == make(concurrency=concurrency).concurrency


def test_usage_error_for_a_bad_url_does_not_echo_the_key() -> None:
    """A base URL error shows the URL, never the key."""
    with pytest.raises(UsageError) as raised:
        make(base_url="nonsense")
    assert "nonsense" in str(raised.value)
    assert KEY not in str(raised.value)


@pytest.mark.parametrize("max_retry_time", [-1.0, math.nan], ids=["negative", "nan"])
def test_invalid_max_retry_time_raises_usage_error(max_retry_time: float) -> None:
    """A negative or NaN --max-retry-time is refused like the other numeric settings."""
    # Negative silently disables every retry and NaN silently removes the time bound.
    with pytest.raises(UsageError) as raised:
        make(max_retry_time=max_retry_time)
    assert "--max-retry-time" in message(raised.value)


@pytest.mark.parametrize(
    ("app_id", "region", "url"),
    [
        ("12345abc", "us", "https://12345abc.api-us.cometchat.io/v3"),
        ("app", "eu", "https://app.api-eu.cometchat.io/v3"),
        ("app", "in", "https://app.api-in.cometchat.io/v3"),
    ],
)
def test_default_base_url(app_id: str, region: str, url: str) -> None:
    """The default base URL is CometChat's documented https://{appId}.api-{region}.cometchat.io/v3."""
    assert url == default_base_url(app_id, region)


@pytest.mark.parametrize(
    ("app_id", "region", "mentions"),
    [
        ("x@127.0.0.1:47111/", "us", "app id"),
        ("app/../evil", "us", "app id"),
        ("evil.example", "us", "app id"),
        ("-app", "us", "app id"),
        ("", "us", "app id"),
        ("a" * 64, "us", "app id"),
        ("app", "eu.evil.example/", "region"),
    ],
    ids=["userinfo-and-port", "path", "dot", "leading-hyphen", "empty", "too-long", "region"],
)
def test_default_base_url_refuses_what_is_not_one_host_label(
    app_id: str, region: str, mentions: str
) -> None:
    """An app id or region that would change the host the key goes to is a usage error."""
    with pytest.raises(UsageError, match=mentions):
        default_base_url(app_id, region)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.api-eu.cometchat.io/v3", True),
        ("http://127.0.0.1:8080/v3", True),
        ("http://localhost:8080/v3", True),
        ("http://app.api-eu.cometchat.io/v3", False),
        ("http://10.0.0.5/v3", False),
        ("ftp://127.0.0.1/v3", False),
    ],
)
def test_plain_http_only_for_loopback(url: str, allowed: bool) -> None:
    """The key never travels in clear: http:// is refused unless the server is this machine."""

    def make() -> Settings:
        return Settings(base_url=url, api_key=Secret("k"), audit_path=Path("a.jsonl"))

    if allowed:
        assert make().base_url == url
    else:
        with pytest.raises(UsageError, match="https://"):
            make()
