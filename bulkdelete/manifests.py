"""Match each run's manifest to the input files ``verify`` was given.

Every run's manifest must list exactly the given files, each by its SHA-256. An input a run
read as a stream (stdin) has its hash in the run's ``input_read`` line instead: of the whole file
when the run read the stream to its end, else of the file's first ``bytes`` bytes. A run killed
before it wrote that line is matched to the one given file its other inputs leave.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bulkdelete.records import Input, InputRead, InputStream

_CHUNK: Final = 1 << 20


@dataclass(slots=True)
class Read:
    """One input of a run's manifest; a stream's hash comes with its ``input_read`` line."""

    name: str  # as the run's rows name it
    sha256: str | None
    size: int | None = None
    complete: bool = True  # False: the run read only the first ``size`` bytes of a stream
    streamed: bool = False

    @classmethod
    def of(cls, listed: Input) -> Read:
        """Return what a manifest entry says was read (a stream: nothing yet)."""
        if isinstance(listed, InputStream):
            return cls(listed.name, None, streamed=True)
        return cls(listed.name, listed.sha256)

    def take(self, record: InputRead) -> None:
        """Take a stream's hash, size and completeness from its ``input_read`` line."""
        self.sha256, self.size, self.complete = record.sha256, record.bytes, record.complete

    def __str__(self) -> str:
        if self.sha256 is None:
            return f"{self.name} (streamed, no input_read line)"
        if not self.complete:
            return f"{self.name} (its first {self.size} bytes, sha256 {self.sha256[:12]}…)"
        return f"{self.name} (sha256 {self.sha256[:12]}…)"


@dataclass(frozen=True, slots=True)
class Match:
    """The given file each input of a manifest is (None where none is), and those left over.

    ``guessed`` is the input matched only because it was the one left: a stream whose run was
    killed before it said what it read.
    """

    paths: tuple[str | None, ...]
    left: tuple[str, ...]
    guessed: int | None = None

    @property
    def exact(self) -> bool:
        """True when every input is a given file and every given file an input."""
        return not self.left and None not in self.paths


class Given:
    """The input files ``verify`` was given, by path, with their SHA-256."""

    def __init__(self) -> None:
        self.hashes: dict[str, str] = {}
        self._prefixes: dict[tuple[str, int], str | None] = {}  # (path, bytes) -> SHA-256

    def add(self, path: Path) -> str | None:
        """Hash one file; return why it cannot be read, if it cannot."""
        try:
            with path.open("rb") as handle:
                self.hashes[str(path)] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            return f"cannot read the input: {exc.strerror or exc}"
        return None

    def match(self, reads: Sequence[Read]) -> Match:
        """Match each input a manifest lists to a different given file."""
        left = dict(self.hashes)
        paths: list[str | None] = []
        for read in reads:
            path = next((p for p in left if self._is(p, read)), None)
            if path is not None:
                del left[path]
            paths.append(path)
        unknown = [n for n, read in enumerate(reads) if read.sha256 is None]
        if len(unknown) == 1 and paths.count(None) == 1 and len(left) == 1:
            paths[unknown[0]] = left.popitem()[0]
            return Match(tuple(paths), (), guessed=unknown[0])
        return Match(tuple(paths), tuple(left))

    def _is(self, path: str, read: Read) -> bool:
        """Tell whether ``read`` is the given file ``path``, or (a stream cut short) its start."""
        if read.sha256 is None:
            return False
        if read.complete or read.size is None:
            return self.hashes.get(path) == read.sha256
        if (path, read.size) not in self._prefixes:
            self._prefixes[path, read.size] = _prefix_sha256(Path(path), read.size)
        return self._prefixes[path, read.size] == read.sha256


def _prefix_sha256(path: Path, size: int) -> str | None:
    """Return the SHA-256 of the first ``size`` bytes of ``path``; None if it holds fewer."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while size and (chunk := handle.read(min(size, _CHUNK))):
                digest.update(chunk)
                size -= len(chunk)
    except OSError:
        return None  # an unreadable file was reported when it was given
    return None if size else digest.hexdigest()
