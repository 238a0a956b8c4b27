"""``bulkdelete demo``: delete the sample users from a fake CometChat started in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from bulkdelete import logs, render
from bulkdelete.cli.exits import ExitCode, exit_code


@click.command()
@click.option(
    "--permanent", is_flag=True, help="Erase instead of deactivating (on the fake server)."
)
@click.option(
    "--audit",
    "audit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the demo's audit.",
)
def demo(permanent: bool, audit_path: Path | None) -> ExitCode:
    """Delete the sample users from a fake CometChat server started in-process."""
    from bulkdelete import demo as demo_module  # noqa: PLC0415

    logs.configure(level="warning")
    summary = asyncio.run(
        demo_module.run_demo(permanent=permanent, audit_path=audit_path, echo=click.echo)
    )
    click.echo(render.summary_text(summary, resume_command=None))
    return exit_code(summary)
