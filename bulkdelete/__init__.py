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

from bulkdelete._version import __version__
from bulkdelete.errors import (
    AuditError,
    BulkDeleteError,
    FatalApiError,
    InputError,
    UsageError,
)
from bulkdelete.outcome import Outcome
from bulkdelete.run import delete_users
from bulkdelete.settings import Secret, Settings, default_base_url
from bulkdelete.summary import RunStatus, Summary

__all__ = [
    "AuditError",
    "BulkDeleteError",
    "FatalApiError",
    "InputError",
    "Outcome",
    "RunStatus",
    "Secret",
    "Settings",
    "Summary",
    "UsageError",
    "__version__",
    "default_base_url",
    "delete_users",
]
