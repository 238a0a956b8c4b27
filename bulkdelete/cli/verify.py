"""``bulkdelete verify``: check audits (hash chain, manifests, one outcome per row, the head)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bulkdelete.anchor import Expected
from bulkdelete.cli import environment, options
from bulkdelete.cli.exits import ExitCode
from bulkdelete.errors import UsageError


class HeadType(click.ParamType[Expected, Any]):
    """``HASH`` or ``HASH:LINES``, as a run's summary prints the audit's head."""

    name = "HASH[:LINES]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Expected:
        if isinstance(value, Expected):
            return value
        try:
            return Expected.parse(str(value))
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


@click.command()
@click.argument(
    "audits", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@options.input_files(
    "A file the runs read; repeat for each. Checks every run's manifest against its "
    "SHA-256 and that each row has exactly one final outcome."
)
@click.option(
    "--expect-head",
    "expected",
    multiple=True,
    type=HeadType(),
    help="The head a run's summary printed (HASH:LINES): FAIL unless the audit still ends "
    "there. Once per audit, in order, when several are given.",
)
def verify(
    audits: tuple[Path, ...], inputs: tuple[Path, ...], expected: tuple[Expected, ...]
) -> ExitCode:
    """Check AUDIT files: hash chain, run manifests, one final outcome per input row.

    Prints PASS, or FAIL with the first broken line and what is wrong; exits 0 only on PASS,
    1 otherwise. A keyed chain (HMAC) is checked with the key in env BULKDELETE_AUDIT_KEY.
    """
    from bulkdelete import anchor, evidence, verification  # noqa: PLC0415  (this command only)

    if expected and len(expected) != len(audits):
        raise UsageError(
            f"--expect-head was given {len(expected)} times for {len(audits)} audits: give "
            "one head per audit, in the order of the audits"
        )
    key = environment.audit_key()
    secret = key.reveal().encode() if key else None
    result = evidence.verify(audits, inputs=inputs, key=secret)
    if expected:
        result = anchor.check_heads(result, expected, key=secret)
    click.echo(verification.verification_text(result))
    return ExitCode.OK if result.ok else ExitCode.INCOMPLETE
