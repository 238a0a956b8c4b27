"""``bulkdelete verify``: check audits (hash chain, manifests, one outcome per row)."""

from __future__ import annotations

from pathlib import Path

import click

from bulkdelete.cli import environment
from bulkdelete.cli.exits import ExitCode


@click.command()
@click.argument(
    "audits", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A file the runs read; repeat for each. Checks every run's manifest against its "
    "SHA-256 and that each row has exactly one final outcome.",
)
def verify(audits: tuple[Path, ...], inputs: tuple[Path, ...]) -> ExitCode:
    """Check AUDIT files: hash chain, run manifests, one final outcome per input row.

    Prints PASS, or FAIL with the first broken line and what is wrong; exits 0 only on PASS,
    1 otherwise. A keyed chain (HMAC) is checked with the key in env BULKDELETE_AUDIT_KEY.
    """
    from bulkdelete import evidence, verification  # noqa: PLC0415  (only this command needs it)

    key = environment.audit_key()
    result = evidence.verify(audits, inputs=inputs, key=key.reveal().encode() if key else None)
    click.echo(verification.verification_text(result))
    return ExitCode.OK if result.ok else ExitCode.INCOMPLETE
