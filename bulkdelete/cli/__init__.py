"""The command line: parse flags and environment, call one function per command, exit with its
``ExitCode``.

One module per command (``delete``, ``report``, ``check``, ``verify``, ``fake-server``,
``demo``) and per concern (``options`` shared by delete and check, file ``guards``, the
``environment``, the ``console``, ``signals``, the ``ending`` of a run). Only the CLI and
``demo`` read the environment or the terminal. Every user mistake ends in one line on stderr
and exit code 2 before anything is sent; tracebacks are for bugs only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final, NoReturn

import click

from bulkdelete._version import __version__
from bulkdelete.cli.check import check
from bulkdelete.cli.delete import delete
from bulkdelete.cli.demo import demo
from bulkdelete.cli.exits import ExitCode
from bulkdelete.cli.fake import fake_server
from bulkdelete.cli.report import report
from bulkdelete.cli.verify import verify
from bulkdelete.errors import BulkDeleteError, FatalApiError, SettingError

__all__ = ["ExitCode", "cli", "main", "message"]

# How the CLI's user gives the settings that no option of delete or check names.
_GIVEN_ELSEWHERE: Final = {
    "api_key": "COMETCHAT_API_KEY or pass --api-key-file",
    "audit_key": "BULKDELETE_AUDIT_KEY",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulkdelete")
def cli() -> None:
    """Delete CometChat users in bulk, paced, retried, and accounted for in a JSONL audit."""


for _command in (delete, report, check, verify, fake_server, demo):
    cli.add_command(_command)


def message(error: BulkDeleteError) -> str:
    """Return the line the CLI says for an error: a setting is named as its user gives it,
    by its flag or its environment variable."""
    if not isinstance(error, SettingError):
        return str(error)
    flags = {
        param.name: param.opts[0]
        for command in (delete, check)
        for param in command.params
        if isinstance(param, click.Option) and param.name
    }
    return error.worded({**flags, **_GIVEN_ELSEWHERE})


def _fail(text: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    click.echo(f"bulkdelete: error: {text}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the CLI; turn every user mistake into one line on stderr and a documented exit code."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="bulkdelete",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(ExitCode.USAGE)
    except click.UsageError as exc:
        _fail(exc.format_message())
    except click.Abort:
        _fail("aborted; nothing was sent", ExitCode.SIGINT)
    except FatalApiError as exc:
        _fail(str(exc), ExitCode.FATAL)
    except BulkDeleteError as exc:
        _fail(message(exc))
    except BrokenPipeError:
        sys.exit(ExitCode.INCOMPLETE)
    sys.exit(code)  # the command's ExitCode; 0 after --help or --version
