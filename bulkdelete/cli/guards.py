"""File guards of the commands, checked before anything is sent or written.

An output never overwrites a file the command reads or appends to (an input, the audit); its
directory must exist; a file that cannot be written is one line naming its flag, never a
traceback. Every file that names UIDs is written as mode 600 (``privatefile``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

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
