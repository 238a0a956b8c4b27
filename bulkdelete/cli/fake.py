"""``bulkdelete fake-server``: run the CometChat stand-in until SIGINT or SIGTERM.

Its options stay one block: the fake server's flags grow with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from bulkdelete.cli.exits import ExitCode
from bulkdelete.errors import UsageError


@click.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--users-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="UIDs that exist: one per line, or a CSV with a uid column.",
)
@click.option("--all-exist", is_flag=True, help="Every UID exists until it is deleted.")
@click.option(
    "--deactivated-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="UIDs that exist, deactivated: one per line, or a CSV with a uid column.",
)
@click.option(
    "--deactivated-not-found",
    is_flag=True,
    help="A permanent DELETE of a deactivated user answers ERR_UID_NOT_FOUND (by default it "
    "erases the user, as CometChat's own tests show).",
)
@click.option(
    "--max-batch", type=int, help="Most UIDs one bulk call (DELETE or PUT /v3/users) takes."
)
@click.option(
    "--bulk-unlisted-rate",
    type=float,
    default=0.0,
    help="Fraction of the UIDs of a bulk call that its 200 names in no list (the call still "
    "applies to them): an answer that does not account for every UID.",
)
@click.option(
    "--max-body",
    type=int,
    default=10 * 1024,
    show_default=True,
    help="Most bytes of a bulk call's body (CometChat documents 10 KB).",
)
@click.option("--limit", type=int, help="Fixed-window rate limit: requests per window.")
@click.option(
    "--window",
    type=float,
    default=60.0,
    show_default=True,
    help="Window length in seconds; windows start at multiples of it on the server clock.",
)
@click.option(
    "--window-from-first-request",
    is_flag=True,
    help="Count windows from the first request instead of the server clock.",
)
@click.option(
    "--reset-on-every-answer",
    is_flag=True,
    help="Send the window's reset time on every answer, not only on a 429.",
)
@click.option(
    "--header-style", type=click.Choice(["old", "new", "both"]), default="both", show_default=True
)
@click.option(
    "--clock-skew",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds the server's clock (windows, Date header) runs ahead of this machine's.",
)
@click.option("--bad-key-status", type=int, default=404, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--fail-rate",
    type=float,
    default=0.0,
    help="Fraction of DELETEs (and bulk calls) answered 5xx.",
)
@click.option("--throttle-rate", type=float, default=0.0, help="Fraction answered 429.")
@click.option("--reset-rate", type=float, default=0.0, help="Fraction whose connection is reset.")
@click.option(
    "--slow-rate", type=float, default=0.0, help="Fraction answered after --slow-seconds."
)
@click.option("--slow-seconds", type=float, default=5.0, show_default=True)
@click.option(
    "--drop-rate", type=float, default=0.0, help="Fraction applied, then the answer dropped."
)
@click.option(
    "--fault-retry-after",
    type=float,
    default=1.0,
    show_default=True,
    help="Retry-After of injected 429s.",
)
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option(
    "--live-rate",
    type=float,
    default=0.0,
    help="Requests per second of simulated other clients of the app, using the same window.",
)
@click.option(
    "--live-burst-factor",
    type=float,
    default=1.0,
    show_default=True,
    help="Live traffic runs this many times --live-rate during a burst.",
)
@click.option(
    "--live-burst-seconds",
    type=float,
    default=0.0,
    show_default=True,
    help="How long a burst lasts.",
)
@click.option(
    "--live-burst-every",
    type=float,
    default=0.0,
    show_default=True,
    help="A burst ends every this many seconds of the server clock.",
)
@click.option("--revoke-key-after", type=int, help="The key stops working after this many DELETEs.")
@click.option(
    "--success-body",
    default="documented",
    show_default=True,
    help="The 200 an applied DELETE gets: documented, deactivated-uids (the other documented "
    "shape of a soft delete), or one that proves nothing: html, empty, success-false, "
    "invalid-json, error-200, huge (200 MB, streamed).",
)
@click.option(
    "--portal", is_flag=True, help="Answer every request 200 with HTML, as a captive portal."
)
@click.option(
    "--redirect-to",
    metavar="URL",
    help="Answer every request 307 to URL + its path, as a redirecting proxy.",
)
@click.option(
    "--quote-key",
    is_flag=True,
    help="Quote the apikey sent in AUTH_ERR_APIKEY_NOT_FOUND messages, as mock servers do.",
)
def fake_server(
    host: str,
    port: int,
    users_file: Path | None,
    all_exist: bool,
    deactivated_file: Path | None,
    **options: Any,
) -> ExitCode:
    """Run the CometChat stand-in; prints its base URL first. The key is env COMETCHAT_API_KEY."""
    from bulkdelete import fake  # noqa: PLC0415  (the test server stays out of delete runs)

    users = fake.load_users(users_file) if users_file else None
    deactivated = fake.load_users(deactivated_file) if deactivated_file else None
    key = os.environ.get("COMETCHAT_API_KEY", "").strip()
    if key:
        options["api_key"] = key
    try:
        config = fake.FakeConfig(
            users=users, deactivated=deactivated, all_exist=all_exist, **options
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def ready(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_serve_until_signal(fake.serve(config, host=host, port=port, ready=ready)))
    return ExitCode.OK


async def _serve_until_signal(server: Any) -> None:
    task = asyncio.ensure_future(server)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
