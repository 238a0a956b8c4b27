"""structlog configuration and secret redaction.

Logs always go to stderr, so stdout stays clean for data: a console renderer on a terminal, one
JSON object per line elsewhere. A redaction processor runs just before rendering and replaces
every secret value (wherever it appears in any string) and every field with a secret-sounding
name, at every level, debug included.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, TextIO

import orjson
import structlog

LEVELS: Final = ("debug", "info", "warning", "error")
_SECRET_FIELDS: Final = frozenset(
    {"apikey", "api_key", "authorization", "password", "token", "secret", "cookie"}
)
_MASK: Final = "***"


class Redactor:
    """A structlog processor that masks secret values and secret-named fields."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

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
        text = _as_text(value)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

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
