"""Guards of the commands, checked before anything is sent or written: files and flags.

An output never overwrites a file the command reads or appends to (an input, the audit); its
directory must exist; a file that cannot be written is one line naming its flag, never a
traceback. Every file that names UIDs is written as mode 600 (``privatefile``). Flags of
``delete`` that do not go together are refused the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click
from click.core import ParameterSource

from bulkdelete.errors import UsageError
from bulkdelete.rows import STDIN

_T = TypeVar("_T")


def check_output(path: Path | None, flag: str, keep: Sequence[Path] = ()) -> None:
    """Refuse an output file whose directory does not exist, or that is one of ``keep``."""
    if path is None:
        return
    if not path.absolute().parent.is_dir():
        raise UsageError(f"{flag} {path}: there is no directory {path.parent}")
    refuse_overwrite(path, flag, keep)


def refuse_overwrite(path: Path, flag: str, keep: Sequence[Path]) -> None:
    """Refuse ``path`` when it is one of ``keep``, the files a command reads or appends to."""
    target = path.resolve()
    for kept in keep:
        if kept.resolve() == target:
            raise UsageError(f"{flag} {path} would overwrite {kept}: name another file")


def check_delete_files(
    inputs: Sequence[str],
    audit_path: Path | None,
    summary_json: Path | None,
    invalid_out: Path | None,
    metrics_file: Path | None = None,
) -> None:
    """Refuse an audit or an output file that is an input, or an output that is the audit or
    another output."""
    read = [Path(name) for name in inputs if name != STDIN]
    if audit_path is not None:
        refuse_overwrite(audit_path, "--audit", read)
        read.append(audit_path)
    check_output(summary_json, "--summary-json", read)
    check_output(invalid_out, "--invalid-out", [*read, *([summary_json] if summary_json else [])])
    written = [path for path in (summary_json, invalid_out) if path is not None]
    check_output(metrics_file, "--metrics-file", [*read, *written])


def write_output(path: Path, flag: str, write: Callable[[], _T]) -> _T:
    """Return what ``write`` returns; a file that cannot be written is one line, not a traceback."""
    try:
        return write()
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None


def check_ca_bundle(path: Path | None) -> None:
    """Refuse a --ca-bundle that holds no PEM certificate, before anything is sent."""
    if path is None:
        return
    import ssl  # noqa: PLC0415  (only a run with --ca-bundle needs it)

    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"--ca-bundle {path} holds no usable PEM certificate ({exc})") from None


def refuse_conflicts(
    *,
    dry_run: bool,
    invalid_out: Path | None,
    ca_bundle: Path | None,
    uid_hash: bool,
    verify_deleted: bool,
    metrics_file: Path | None,
    continues: str | None,
    audit_path: Path | None,
) -> None:
    """Refuse ``delete`` flags that do not go together, and a --ca-bundle that holds no
    certificate."""
    if invalid_out is not None and not dry_run:
        raise UsageError(
            "--invalid-out lists the invalid rows of a --dry-run; a real run audits them "
            "(`bulkdelete report` counts them, each audit line names its file:line)"
        )
    if metrics_file is not None and dry_run:
        raise UsageError("--metrics-file records what a run did; a --dry-run sends nothing")
    check_ca_bundle(ca_bundle)
    if uid_hash and verify_deleted:
        raise UsageError(
            "--verify-deleted needs the UIDs in the audit; it cannot follow --audit-uid-hash"
        )
    if continues is not None and audit_path is None:
        raise UsageError(f"{continues} needs --audit naming the audit of the run to continue")


def refuse_batched_erasure(*, permanent: bool, batch_size: int) -> None:
    """Refuse an explicit --batch-size above 1 with --permanent.

    CometChat erases one user per call (there is no bulk erasure). Ignoring the flag would let
    an operator plan on a speed and a share of the budget the run never has: say so instead.
    """
    given = click.get_current_context().get_parameter_source("batch_size")
    if permanent and batch_size > 1 and given is not ParameterSource.DEFAULT:
        raise UsageError(
            f"--batch-size {batch_size} with --permanent: CometChat erases one user per call "
            "(it has no bulk erasure), so a permanent run cannot batch; drop --batch-size"
        )
