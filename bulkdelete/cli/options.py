"""The options that commands share (``delete`` and ``check``; ``verify`` and ``report``), and the
target that ``delete`` and ``check`` name together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bulkdelete.errors import UsageError
from bulkdelete.settings import DEFAULTS, REGIONS, default_base_url

_F = TypeVar("_F", bound=Callable[..., Any])


class RateType(click.ParamType[float | None, Any]):
    """``auto`` or a number of requests per second."""

    name = "auto|N"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | None:
        if value is None or value == "auto":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number", param, ctx)


APP_ID = click.option(
    "--app-id", envvar="COMETCHAT_APP_ID", help="CometChat app id [env COMETCHAT_APP_ID]."
)
REGION = click.option(
    "--region",
    envvar="COMETCHAT_REGION",
    type=click.Choice(REGIONS),
    default="us",
    show_default=True,
    help="App region [env COMETCHAT_REGION].",
)
API_KEY_FILE = click.option(
    "--api-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read the REST API key from this file instead of env COMETCHAT_API_KEY.",
)
RATE = click.option(
    "--rate",
    type=RateType(),
    default="auto",
    show_default=True,
    help="Ceiling in requests per second; auto starts at CometChat's documented 10,000/min. "
    "Either way the run follows the rate-limit headers and pauses on 429s.",
)
CONCURRENCY = click.option(
    "--concurrency",
    type=int,
    default=DEFAULTS.concurrency,
    show_default=True,
    help="Most requests in flight (the run sizes it to rate x round trip below this).",
)
CA_BUNDLE = click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="PEM file of CAs to trust for a private TLS endpoint.",
)


def target(app_id: str | None, region: str, base_url: str | None) -> tuple[str, str]:
    """Return the API root and how to name it to a person."""
    if base_url:
        return base_url, base_url
    if app_id:
        return default_base_url(app_id, region), f"app {app_id} in region {region}"
    raise UsageError("give --app-id (or COMETCHAT_APP_ID), or --base-url (or COMETCHAT_BASE_URL)")


def input_files(help_text: str) -> Callable[[_F], _F]:
    """Return ``--input FILE`` (repeatable, an existing file) with the command's own help."""
    return click.option(
        "--input",
        "inputs",
        multiple=True,
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        help=help_text,
    )
