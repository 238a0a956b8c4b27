"""What the CLI reads from the environment and the machine: the keys, the proxy, who runs it.

Only the CLI (and ``demo``) reads the environment; the library is handed what it needs.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import stat
from pathlib import Path

import click

from bulkdelete.errors import UsageError
from bulkdelete.proxy import proxy_for, proxy_passwords
from bulkdelete.records import Operator
from bulkdelete.settings import Secret


def api_key(key_file: Path | None) -> Secret:
    """Return the API key: from ``key_file`` (--api-key-file), else env COMETCHAT_API_KEY."""
    if key_file is None:
        return Secret(os.environ.get("COMETCHAT_API_KEY", "").strip())
    try:
        value = key_file.read_text(encoding="utf-8").strip()
        mode = stat.S_IMODE(key_file.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --api-key-file {key_file}: {exc}") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # Not refused: the key may be shared on purpose (a group of operators), but an
        # accident here hands the key to every account on the machine.
        click.echo(
            f"bulkdelete: warning: --api-key-file {key_file} is readable by group or others "
            f"(mode {mode:04o}); make it private with: chmod 600 {shlex.quote(str(key_file))}",
            err=True,
        )
    return Secret(value)


def audit_key() -> Secret | None:
    """Return the audit's HMAC key, env BULKDELETE_AUDIT_KEY, if set."""
    key = os.environ.get("BULKDELETE_AUDIT_KEY", "")
    return Secret(key) if key else None


def proxy(base_url: str) -> str | None:
    """Return the proxy the environment names for ``base_url`` (None: connect directly)."""
    return proxy_for(base_url, os.environ)


def secrets(*keys: Secret | None) -> list[str]:
    """Return what the logs must never show: the ``keys`` given and the proxies' passwords."""
    return [*(key.reveal() for key in keys if key), *proxy_passwords(os.environ)]


def operator() -> Operator:
    """Name who runs this, for the manifest: the login name and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER: a bare container
        user = f"uid {os.getuid()}"
    return Operator(user=user, host=socket.gethostname())
