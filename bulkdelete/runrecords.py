"""What a run was: its settings and its manifest (who ran it, what it read), as records.

``records`` is the audit's one schema and re-exports these; they live here so that it stays one
module a reader can hold in mind (they are values of ``run_started``, not lines of their own).
Older audits decode: a field that a later version added has a default that says what an audit
without it meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

DEFAULT_CHAIN: Final = "sha256"  # ``audit_chain`` of a run whose lines are linked by SHA-256


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """A run's effective settings, as ``Settings.public`` gives them: never the key."""

    base_url: str
    target: str
    permanent: bool
    erase_deactivated: bool = False  # False: not asked for, or written before it existed
    rate: float | Literal["auto"]
    max_share: float | None = None  # None: written before --max-share existed
    concurrency: int
    batch_size: int = 1  # UIDs per call; 1: written before bulk calls, one DELETE per user
    max_attempts: int
    max_retry_time: float
    timeout: float
    max_outage: float | None = None  # None: written before --max-outage existed
    max_pause: float | None = None  # None: written before --max-pause existed
    column: str | None
    no_header: bool = False
    ref_column: str | None = None  # None: no --ref-column, or written before it existed
    ca_bundle: str | None
    audit_chain: str = DEFAULT_CHAIN
    audit_key_id: str | None = None
    uid_hash: bool = False
    proxy: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    """Who ran a run: the login name and the host."""

    user: str
    host: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InputFile:
    """An input file of a run, by its SHA-256, read whole before the run started."""

    name: str  # as the run's rows name it
    rows: int
    sha256: str
    bytes: int | None = None  # None: written by a demo run before it was recorded
    column: str | None = None  # the column read; None: no header, or written before it was told


@dataclass(frozen=True, slots=True, kw_only=True)
class InputStream:
    """An input a run read as it came (stdin): its size and hash are in its ``InputRead``."""

    name: str
    streamed: Literal[True] = True
    column: str | None = None


Input: TypeAlias = InputFile | InputStream


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a CLI run records of who ran it and what it read; a library run has neither."""

    operator: Operator | None = None
    inputs: tuple[Input, ...] | None = None
