"""bulkdelete: delete CometChat users in bulk, paced, retried, and accounted for in an audit.

The library API runs the same pipeline as the CLI::

    import asyncio
    import os
    from pathlib import Path

    from bulkdelete import Secret, Settings, delete_users

    settings = Settings(
        base_url="https://APP_ID.api-eu.cometchat.io/v3",
        api_key=Secret(os.environ["COMETCHAT_API_KEY"]),
        audit_path=Path("erasure-audit.jsonl"),
        permanent=True,
    )
    summary = asyncio.run(delete_users(["alice", "bob"], settings))
    print(summary.counts, summary.all_final)
"""

from typing import TYPE_CHECKING, Any

from bulkdelete._version import __version__
from bulkdelete.errors import (
    AuditError,
    BulkDeleteError,
    FatalApiError,
    InputError,
    SettingError,
    UsageError,
)
from bulkdelete.outcome import Outcome
from bulkdelete.settings import Secret, Settings, default_base_url
from bulkdelete.summary import RunStatus, Summary

if TYPE_CHECKING:
    from bulkdelete.run import delete_users

__all__ = [
    "AuditError",
    "BulkDeleteError",
    "FatalApiError",
    "InputError",
    "Outcome",
    "RunStatus",
    "Secret",
    "SettingError",
    "Settings",
    "Summary",
    "UsageError",
    "__version__",
    "default_base_url",
    "delete_users",
]


def __getattr__(name: str) -> Any:
    # delete_users brings aiohttp with it: commands that send nothing (a dry run over a
    # million rows) stay small by importing it only when it is asked for.
    if name == "delete_users":
        from bulkdelete.run import delete_users  # noqa: PLC0415

        return delete_users
    raise AttributeError(f"module 'bulkdelete' has no attribute {name!r}")
