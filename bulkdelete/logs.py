"""structlog configuration and secret redaction.

Logs always go to stderr, so stdout stays clean for data: a console renderer on a terminal, one
JSON object per line elsewhere. A redaction processor runs just before rendering and replaces
every secret value (wherever it appears in any string) and every field with a secret-sounding
name, at every level, debug included.

``Redaction`` is the one masking of secrets in text, shared with the API client, which masks the
API key in everything the server says before anyone stores or prints it. A server may write the
key in another case, percent-encoded (``%2F`` or ``%2f``), as ``quote_plus`` writes it, HTML- or
JSON-escaped: each of those is masked too, and a text that still holds the key once decoded is
withheld whole.
"""

from __future__ import annotations

import html
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Final, TextIO
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import orjson
import structlog

LEVELS: Final = ("debug", "info", "warning", "error")
_SECRET_FIELDS: Final = frozenset(
    {"apikey", "api_key", "authorization", "password", "token", "secret", "cookie"}
)
_MASK: Final = "***"
WITHHELD: Final = "[withheld: it held a secret in an encoded form]"
_ENCODED_HINTS: Final = ("%", "&", "+")
_DECODE_ROUNDS: Final = 3  # a text encoded twice over (%252F) is still decoded


def _forms(secret: str) -> set[str]:
    """Return the ways a server or a URL may write ``secret``; case is ignored on matching."""
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        html.escape(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
    }


def _decoded(text: str) -> Iterator[str]:
    """Yield ``text`` with percent- and HTML-encoding undone, a few rounds deep.

    Both ways of reading ``+`` are tried: a space in a query, itself in a path.
    """
    views = {text}
    for _ in range(_DECODE_ROUNDS):
        views = {html.unescape(undo(view)) for view in views for undo in (unquote, unquote_plus)}
        yield from views


class Redaction:
    """Mask secrets in text: ``redact(text)`` returns it with every secret replaced by ``***``.

    Matching ignores case and covers the encoded forms of each secret (see the module
    docstring). A text that still holds a secret once decoded, in a form no pattern foresaw, is
    replaced whole by ``WITHHELD``.
    """

    __slots__ = ("_folded", "_pattern")

    def __init__(self, secrets: Iterable[str]) -> None:
        unique = {s for s in secrets if s}
        forms = sorted(
            {form for secret in unique for form in _forms(secret)}, key=len, reverse=True
        )
        self._pattern = (
            re.compile("|".join(map(re.escape, forms)), re.IGNORECASE) if forms else None
        )
        self._folded = tuple(secret.casefold() for secret in unique)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        masked = self._pattern.sub(_MASK, text)
        if any(hint in masked for hint in _ENCODED_HINTS):
            for view in _decoded(masked):
                folded = view.casefold()
                if any(secret in folded for secret in self._folded):
                    return WITHHELD
        return masked


class Redactor:
    """A structlog processor that masks secret values and secret-named fields."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redact = Redaction(secrets)

    def scrub(self, value: object) -> object:
        """Return ``value`` with every secret masked; containers are copied, never mutated."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {
                k: _MASK if str(k).lower() in _SECRET_FIELDS else self.scrub(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(v) for v in value]
        return self._redact(_as_text(value))

    def __call__(
        self, _logger: object, _method: str, event_dict: MutableMapping[str, Any]
    ) -> Mapping[str, Any]:
        scrubbed = self.scrub(event_dict)
        assert isinstance(scrubbed, dict)  # noqa: S101  (scrub maps a Mapping to a dict)
        return scrubbed


def _as_text(value: object) -> str:
    """Return the text a renderer would show for a value (which may well hold a secret)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


def _json_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure(
    *, level: str = "info", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Configure structlog once for this process: level filter, redaction, renderer, stderr."""
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=tty)
        if tty
        else structlog.processors.JSONRenderer(serializer=_json_dumps)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks become data before redaction, so secrets in them are masked too; without
    # locals, whose truncated reprs could show a piece of a secret that no longer matches.
    processors.append(
        structlog.processors.format_exc_info
        if tty
        else structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
    )
    processors += [Redactor(secrets), renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # aiohttp and asyncio warn through the standard library: keep them on stderr too.
    logging.basicConfig(
        stream=out, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
