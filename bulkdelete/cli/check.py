"""``bulkdelete check``: read back every UID an audit records as deleted."""

from __future__ import annotations

from pathlib import Path

import click

from bulkdelete import logs
from bulkdelete.audit import recorded_settings
from bulkdelete.cli import environment, options
from bulkdelete.cli.ending import end_check
from bulkdelete.cli.exits import ExitCode
from bulkdelete.cli.signals import run_program
from bulkdelete.errors import UsageError
from bulkdelete.settings import Settings


@click.command()
@click.argument("audit", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@options.APP_ID
@options.REGION
@click.option(
    "--base-url",
    envvar="COMETCHAT_BASE_URL",
    help="API root including /v3 [default: the one the audit's last run used].",
)
@options.API_KEY_FILE
@options.RATE
@options.CONCURRENCY
@options.CA_BUNDLE
@click.option("--log-level", type=click.Choice(logs.LEVELS), default="warning", show_default=True)
def check(
    audit: Path,
    app_id: str | None,
    region: str,
    base_url: str | None,
    api_key_file: Path | None,
    rate: float | None,
    concurrency: int,
    ca_bundle: Path | None,
    log_level: str,
) -> ExitCode:
    """Read back every UID AUDIT records as deleted, and append what the API says.

    Exit 0 when the API returns none of them; 1 when some are still returned or unanswered.
    """
    key = environment.api_key(api_key_file)
    logs.configure(level=log_level, secrets=environment.secrets(key))
    runs = recorded_settings([audit])
    if any(s.uid_hash for s in runs):
        raise UsageError(
            f"{audit} names UIDs by pseudonyms (--audit-uid-hash): nothing to read back"
        )
    if not base_url and not app_id and runs:
        base_url = runs[-1].base_url
    base_url, target = options.target(app_id, region, base_url)
    settings = Settings(
        base_url=base_url,
        api_key=key,
        audit_key=environment.audit_key(),
        audit_path=audit,
        rate=rate,
        concurrency=concurrency,
        target=target,
        ca_bundle=ca_bundle,
        proxy=environment.proxy(base_url),
    )
    from bulkdelete import launch  # noqa: PLC0415  (only a read-back needs the HTTP stack)

    return end_check(run_program(lambda stop: launch.check_audit(settings, stop=stop)))
