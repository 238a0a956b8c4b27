"""The run's settings: one frozen value built once at the edge and passed down explicitly.

The API key is held in a ``Secret`` whose ``repr`` and ``str`` never show it, so printing the
settings, logging them or putting them in a traceback cannot leak it.
"""

from __future__ import annotations

import hmac
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from bulkdelete.errors import SettingError

REGIONS: Final = ("us", "eu", "in")
DOCUMENTED_LIMIT_PER_MINUTE: Final = 10_000
DEFAULT_RATE: Final = DOCUMENTED_LIMIT_PER_MINUTE / 60
MAX_CONCURRENCY: Final = 1000
MAX_ATTEMPTS: Final = 1000  # far beyond any useful retry count; keeps counters in 64 bits
MAX_BATCH_SIZE: Final = 1000  # a bulk body holds at most 10 KB: ~3,400 one-letter UIDs at most
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
KEYED_CHAIN: Final = "hmac-sha256"  # ``audit_chain`` of a run whose lines are linked by HMAC
# An app id becomes the first label of the API's host name: one DNS label, nothing more.
_APP_ID: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Defaults:
    """The defaults of the tunable settings, each written once, here: ``Settings``, the CLI's
    options, ``RetryPolicy``, the pacer, ``run_delete`` and the docs' checks read ``DEFAULTS``."""

    max_share: float = 0.98  # the rest of the advertised limit stays for the live app
    # A ceiling: the pacer sizes requests in flight to rate x measured round trip (Little's law),
    # and ~167/s at 0.3 s round trips needs ~50 with room; 100 covers answers up to ~0.4 s.
    concurrency: int = 100
    max_attempts: int = 6
    max_retry_time: float = 300.0
    timeout: float = 30.0
    max_outage: float = 300.0
    max_pause: float = 60.0  # one documented window: no Retry-After is believed beyond it
    stop_grace: float = 10.0  # after a first signal, the seconds requests in flight get to end
    # UIDs per bulk deactivation (soft runs): CometChat does not document its largest batch;
    # 100 maximal UIDs fit its documented 10 KB body, and a refusal makes a run learn less.
    batch_size: int = 100


DEFAULTS: Final = Defaults()


def audit_key_id(key: Secret) -> str:
    """Return a short public name for an audit key, so a run can tell a different key apart.

    It reveals no more of the key than every HMAC-chained line already does.
    """
    return hmac.new(key.reveal().encode(), b"bulkdelete audit key id", "sha256").hexdigest()[:16]


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` print ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself; only the HTTP header and the log redactor call this."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def default_base_url(app_id: str, region: str) -> str:
    """Return CometChat's v3 API root for an app in a region.

    Raises ``SettingError`` for an app id that is not one host-name label: anything else (an
    ``@``, a ``/``, a ``:``) could send the key to another host.
    """
    if _APP_ID.fullmatch(app_id) is None:
        raise SettingError(
            "the app id must be letters, digits and inner hyphens, got {got!r}",
            setting="app_id",
            got=app_id,
        )
    if region not in REGIONS:
        raise SettingError(
            "the region must be one of {regions}, got {got!r}",
            setting="region",
            regions=", ".join(REGIONS),
            got=region,
        )
    return f"https://{app_id}.api-{region}.cometchat.io/v3"


def _check_api_key(key: Secret) -> None:
    if not key.reveal():
        raise SettingError(
            "no API key: set {api_key} (an empty value counts as none)", setting="api_key"
        )
    if not all("!" <= char <= "~" for char in key.reveal()):
        # aiohttp would refuse it mid-run with a traceback; the key itself is never echoed.
        raise SettingError(
            "the API key holds a space, a control or a non-ASCII character, which no HTTP "
            "header can carry: check {api_key}",
            setting="api_key",
        )


def public_proxy(proxy: str) -> str:
    """Return a proxy URL without its user and password, to show or record."""
    parts = urlsplit(proxy)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}"


def _check_proxy(proxy: str, base_url: str) -> None:
    try:
        parts = urlsplit(proxy)
        parts.port  # noqa: B018  (parsing the port is the check)
    except ValueError:
        raise SettingError(
            "the proxy URL is not a URL (check HTTPS_PROXY / ALL_PROXY)", setting="proxy"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # A SOCKS proxy, say: aiohttp speaks only HTTP CONNECT to a proxy.
        raise SettingError(
            "the proxy must be http://host:port or https://host:port, got {got}",
            setting="proxy",
            got=public_proxy(proxy),
        )
    if base_url.startswith("http://"):
        # No CONNECT tunnel for plain HTTP: the proxy would read the API key in clear.
        raise SettingError(
            "a proxy ({shown}) would read the API key in clear on the way to the http:// base "
            "URL {url}: add its host to NO_PROXY, or unset the proxy",
            setting="proxy",
            shown=public_proxy(proxy),
            url=base_url,
        )


def _check_base_url(url: str) -> None:
    scheme = url.partition("://")[0]
    if scheme not in ("https", "http"):
        raise SettingError(
            "the base URL must start with https://, got {got!r}", setting="base_url", got=url
        )
    parts = urlsplit(url)
    if "@" in parts.netloc or parts.query or parts.fragment or not parts.hostname:
        # user:password@ would add an Authorization header; ? and # have no place in a root.
        raise SettingError(
            "the base URL must be https://host[:port]/path, with no user, query or "
            "fragment, got {got!r}",
            setting="base_url",
            got=url,
        )
    if scheme == "http" and parts.hostname not in _LOOPBACK:
        # Plain HTTP would carry the API key in clear: only a local test server may use it.
        raise SettingError(
            "the base URL must use https:// (http:// is for 127.0.0.1), got {got!r}",
            setting="base_url",
            got=url,
        )


def _refused(setting: str, got: object, must: str) -> SettingError:
    return SettingError(f"{{setting}} must {must}, got {{got}}", setting=setting, got=got)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one delete run needs, validated; build it with keyword arguments.

    ``base_url`` is the API root including ``/v3``; the client appends ``/users/{uid}``.
    ``rate`` is a ceiling in requests per second, ``None`` for auto (CometChat's documented
    limit, then what the rate-limit headers teach); ``max_share`` is the most of the advertised
    limit a run may take; ``concurrency`` caps requests in flight.
    ``max_retry_time`` bounds the time one UID may spend being retried, in seconds.
    ``batch_size`` is the most UIDs per call of a soft run (``DELETE /users`` with
    ``uidsToDeactivate``; 1: one ``DELETE /users/{uid}`` each). A permanent run erases one
    user per call whatever it says (CometChat has no bulk erasure): ``batch`` is the size a run
    uses. The CLI refuses an explicit ``--batch-size`` above 1 with ``--permanent``.
    ``proxy`` is the HTTP proxy every request goes through (``https://`` targets only, through a
    CONNECT tunnel, so the proxy never sees the key); ``None`` connects directly.
    """

    base_url: str
    api_key: Secret = field(repr=False)
    audit_path: Path
    permanent: bool = False
    # A permanent run reactivates and erases the users its bulk probe finds deactivated.
    erase_deactivated: bool = False
    rate: float | None = None
    max_share: float = DEFAULTS.max_share
    concurrency: int = DEFAULTS.concurrency
    max_attempts: int = DEFAULTS.max_attempts
    max_retry_time: float = DEFAULTS.max_retry_time
    timeout: float = DEFAULTS.timeout
    max_outage: float = DEFAULTS.max_outage
    max_pause: float = DEFAULTS.max_pause  # the longest one rate-limit header may hold the run
    batch_size: int = DEFAULTS.batch_size  # UIDs per call of a soft run
    column: str | None = None
    no_header: bool = False  # one-column inputs hold UIDs from their first line on
    ref_column: str | None = None  # the column of each row's request reference (a ticket id)
    target: str = ""
    ca_bundle: Path | None = None
    audit_key: Secret | None = field(default=None, repr=False)  # HMAC key of the audit's chain
    uid_hash: bool = False  # the audit names UIDs by HMAC pseudonyms (needs audit_key)
    proxy: str | None = field(default=None, repr=False)  # its URL may hold a password

    def __post_init__(self) -> None:
        _check_api_key(self.api_key)
        _check_base_url(self.base_url)
        if self.proxy is not None:
            _check_proxy(self.proxy, self.base_url)
        if self.rate is not None and not 0 < self.rate < math.inf:  # also refuses NaN
            raise _refused("rate", self.rate, "be a finite number above 0")
        if not 0 < self.max_share <= 1:
            raise _refused("max_share", self.max_share, "be above 0 and at most 1")
        for name, count, most in (
            ("concurrency", self.concurrency, MAX_CONCURRENCY),
            ("max_attempts", self.max_attempts, MAX_ATTEMPTS),
            ("batch_size", self.batch_size, MAX_BATCH_SIZE),
        ):
            if not 1 <= count <= most:
                raise _refused(name, count, f"be between 1 and {most}")
        if not self.max_retry_time >= 0:  # also refuses NaN
            raise _refused("max_retry_time", self.max_retry_time, "be 0 seconds or more")
        if not self.max_outage > 0:
            raise _refused("max_outage", self.max_outage, "be above 0 seconds")
        if not 0 < self.max_pause < math.inf:
            raise _refused("max_pause", self.max_pause, "be a finite number of seconds above 0")
        if not 0 < self.timeout < math.inf:
            raise _refused("timeout", self.timeout, "be a finite number of seconds above 0")
        if self.no_header and self.column is not None:
            raise SettingError(
                "{column} names a header row and {no_header} says there is none: give one",
                setting="column",
            )
        self._check_ref_column()
        self._check_erase_deactivated()
        if self.uid_hash and not self.audit_key:
            raise SettingError("{uid_hash} needs the HMAC key in {audit_key}", setting="uid_hash")
        if not self.target:
            object.__setattr__(self, "target", self.base_url)

    def _check_erase_deactivated(self) -> None:
        if self.erase_deactivated and not self.permanent:
            raise SettingError(
                "{erase_deactivated} erases the deactivated users a permanent run finds: it "
                "needs {permanent}",
                setting="erase_deactivated",
            )

    @property
    def batch(self) -> int:
        """The most UIDs one call of this run names: 1 for a permanent run."""
        return 1 if self.permanent else self.batch_size

    def _check_ref_column(self) -> None:
        if self.ref_column is None:
            return
        if self.no_header:
            raise SettingError(
                "{ref_column} names a column of the header row and {no_header} says there is "
                "none: drop one",
                setting="ref_column",
            )
        uids = (self.column or "uid").strip().lower()
        if not self.ref_column.strip() or self.ref_column.strip().lower() == uids:
            raise SettingError(
                "{ref_column} must name a column other than the UIDs' ({got!r})",
                setting="ref_column",
                got=self.ref_column,
            )

    @property
    def rate_ceiling(self) -> float:
        """The most requests per second this run may send, whatever the headers say."""
        return DEFAULT_RATE if self.rate is None else self.rate

    def public(self) -> dict[str, object]:
        """Return the effective settings for the audit and logs, without the key."""
        return {
            "base_url": self.base_url,
            "target": self.target,
            "permanent": self.permanent,
            "erase_deactivated": self.erase_deactivated,
            "rate": "auto" if self.rate is None else self.rate,
            "max_share": self.max_share,
            "concurrency": self.concurrency,
            "batch_size": self.batch,
            "max_attempts": self.max_attempts,
            "max_retry_time": self.max_retry_time,
            "timeout": self.timeout,
            "max_outage": self.max_outage,
            "max_pause": self.max_pause,
            "column": self.column,
            "no_header": self.no_header,
            "ref_column": self.ref_column,
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "audit_chain": KEYED_CHAIN if self.audit_key else "sha256",
            "audit_key_id": audit_key_id(self.audit_key) if self.audit_key else None,
            "uid_hash": self.uid_hash,
            "proxy": public_proxy(self.proxy) if self.proxy else None,
        }
